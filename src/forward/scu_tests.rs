use super::*;

#[test]
fn fragments_fit_the_peers_maximum_pdu_and_have_an_even_length() {
    assert_eq!(fragment_len(16_384), 16_378);
    assert_eq!(fragment_len(16_385), 16_378, "odd room is rounded down to even");
    assert_eq!(fragment_len(4_096), 4_090);
    assert_eq!(fragment_len(u32::MAX), (1 << 20) - 6, "at most a MiB per fragment");
    assert_eq!(fragment_len(3), 2, "never empty");
    for max in [7, 1_001, 65_535] {
        assert_eq!(fragment_len(max) % 2, 0, "{max}");
    }
}
