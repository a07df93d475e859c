use super::*;

#[test]
fn a_cursor_reads_back_as_written_and_garbage_is_refused() {
    let cursor = FeedCursor { tx: 812, feed_id: 40_001 };
    assert_eq!(FeedCursor::parse(&cursor.to_string()).unwrap(), cursor);
    assert_eq!(FeedCursor::parse("").unwrap(), FeedCursor::default());
    for bad in ["12", "a.b", "1.2.3", "-1.2"] {
        assert!(FeedCursor::parse(bad).is_err(), "{bad}");
    }
    assert!(FeedCursor { tx: 2, feed_id: 1 } > FeedCursor { tx: 1, feed_id: 9 });
}
