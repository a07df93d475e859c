use super::*;

fn row(epoch: u64, parent: Option<u64>, fork_at: u64) -> StreamRow {
    StreamRow { epoch, parent, fork_at, fork_event_id: None, stored_through: fork_at, events: 0 }
}

#[test]
fn an_epoch_s_history_is_its_ancestors_up_to_each_fork_point() {
    let rows = [row(0, None, 0), row(1, Some(0), 6), row(2, Some(1), 9)];
    let segments = lineage(&rows, 2).unwrap().unwrap();
    assert_eq!(
        segments,
        [
            Segment { epoch: 0, after: 0, through: 6 },
            Segment { epoch: 1, after: 6, through: 9 },
            Segment { epoch: 2, after: 9, through: u64::MAX }
        ]
    );
    assert_eq!(lineage(&[], 0).unwrap().unwrap(), [Segment { epoch: 0, after: 0, through: u64::MAX }]);
    assert_eq!(lineage(&rows, 3).unwrap(), None);
    assert!(lineage(&[row(1, Some(1), 0)], 1).is_err(), "a loop is damage, not a history");
    assert!(sql(u64::MAX).is_err());
}
