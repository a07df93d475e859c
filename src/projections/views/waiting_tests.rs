use super::*;

#[test]
fn a_cursor_reads_back_what_it_wrote_even_with_colons_in_the_id() {
    let cursor = WaitingCursor { since_us: 1_763_900_000_000_000, id: "0190a-b:3".into() };
    assert_eq!(WaitingCursor::parse(&cursor.to_string()), Some(cursor));
    for bad in ["", "12", "12:", "x:id", ":id"] {
        assert_eq!(WaitingCursor::parse(bad), None, "{bad}");
    }
}
