use super::*;

#[test]
fn edge_ids_are_safe_identifiers() {
    for good in ["edge-1", "A.b_c-9", &"x".repeat(64)] {
        assert!(is_valid_edge_id(good), "{good}");
    }
    for bad in ["", "edge 1", "edge/1", "é", &"x".repeat(65), "a%2Fb"] {
        assert!(!is_valid_edge_id(bad), "{bad}");
    }
}

#[test]
fn no_edge_id_can_look_like_an_epochs_key() {
    assert_eq!(super::super::epochs::stream_key("edge-1", 2), "edge-1#2");
    assert!(!is_valid_edge_id("edge-1#2"), "no edge id can look like an epoch's key");
}

#[test]
fn the_compressed_body_limit_leaves_room_for_gzip_overhead() {
    assert_eq!(compressed_limit(64 << 20), (64 << 20) + (4 << 20) + (64 << 10));
    assert_eq!(compressed_limit(usize::MAX), usize::MAX);
}
