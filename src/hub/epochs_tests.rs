use super::*;

#[test]
fn epoch_0_is_stored_under_the_edge_id_and_later_epochs_beside_it() {
    assert_eq!(stream_key("edge-1", 0), "edge-1");
    assert_eq!(stream_key("edge-1", 2), "edge-1#2");
}

#[test]
fn a_segment_holds_the_numbers_after_its_fork_point_up_to_its_child_s() {
    let segment = Segment { epoch: 1, stream: "e#1".into(), after: 5, through: 9 };
    assert!(!segment.holds(5));
    assert!(segment.holds(6) && segment.holds(9));
    assert!(!segment.holds(10));
}
