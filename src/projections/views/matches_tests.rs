use super::*;

#[test]
fn smallest_keeps_the_lowest_seqs_after_the_cursor_and_says_when_more_remain() {
    let mut page = Smallest::new(2, 2);
    for seq in [9, 1, 4, 2, 7, 3] {
        page.offer(seq, &format!("s{seq}"), "o");
    }
    let (kept, more) = page.finish();
    assert_eq!(kept.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>(), [3, 4]);
    assert!(more);
    let mut last = Smallest::new(4, 5);
    [9, 7, 1].into_iter().for_each(|seq| last.offer(seq, "s", "o"));
    assert_eq!(last.finish(), (vec![(7, "s".into(), "o".into()), (9, "s".into(), "o".into())], false));
}
