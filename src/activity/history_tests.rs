use super::*;

fn at(minute: i64, second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 / 60 * 60 + minute * 60 + second).unwrap()
}

#[test]
fn an_answer_counts_in_its_minute_and_leaves_the_window_a_day_later() {
    let mut h = History::new();
    h.count(0, at(0, 5), false);
    h.count(0, at(0, 59), true);
    h.count(1, at(0, 30), false);
    assert_eq!(h.sum(0, at(0, 59), 1), (2, 1));
    assert_eq!(h.sum(0, at(59, 0), 60), (2, 1), "59 minutes later: still in the hour");
    assert_eq!(h.sum(0, at(60, 0), 60), (0, 0), "60 minutes later: out of the hour");
    assert_eq!(h.sum(0, at(1439, 0), MINUTES), (2, 1), "still in the day");
    assert_eq!(h.sum(0, at(1440, 0), MINUTES), (0, 0), "a day later: out of the day");
    assert_eq!(h.sum(1, at(0, 0), 1), (1, 0));
}

#[test]
fn a_bucket_of_an_earlier_day_is_emptied_before_it_counts_again() {
    let mut h = History::new();
    h.count(2, at(3, 0), true);
    h.count(2, at(3 + 1440, 0), false);
    assert_eq!(h.sum(2, at(3 + 1440, 0), MINUTES), (1, 0));
    h.count(2, at(3, 10), false);
    assert_eq!(h.sum(2, at(3 + 1440, 0), MINUTES), (1, 0), "an answer dated a day back is dropped");
}

#[test]
fn per_minute_series_ends_with_the_current_minute_and_sums_the_listeners_asked_for() {
    let mut h = History::new();
    h.count(0, at(10, 0), false);
    h.count(1, at(10, 1), false);
    h.count(2, at(10, 2), false);
    h.count(0, at(12, 0), false);
    let series = h.per_minute(&[0, 1], at(12, 30));
    assert_eq!(series.len(), MINUTES);
    assert_eq!(&series[MINUTES - 3..], &[2, 0, 1]);
    assert_eq!(series.iter().sum::<u64>(), 3);
}

#[test]
fn disk_consumption_needs_ten_minutes_of_samples() {
    let mut h = History::new();
    h.disk_free(at(0, 0), 10_000_000);
    h.disk_free(at(9, 0), 9_000_000);
    assert_eq!(h.disk_consumed_per_second(at(9, 0)), None);
    h.disk_free(at(100, 0), 4_000_000);
    let rate = h.disk_consumed_per_second(at(100, 0)).unwrap();
    assert!((rate - 6_000_000.0 / 6000.0).abs() < 1e-9, "{rate}");
}

#[test]
fn a_saved_history_reads_back_the_same_within_the_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new();
    h.count(3, at(5, 0), true);
    h.count(0, at(700, 0), false);
    h.disk_free(at(700, 0), 42);
    save(dir.path(), &h.encode(at(700, 30))).unwrap();
    let back = History::load(dir.path()).unwrap().expect("saved");
    assert_eq!(back.sum(3, at(700, 30), MINUTES), (1, 1));
    assert_eq!(back.sum(0, at(700, 30), MINUTES), (1, 0));
    assert_eq!(back, h);
    assert!(!dir.path().join(format!("{FILE}.tmp")).exists(), "the temporary file was renamed");
}

#[test]
fn a_missing_file_is_no_history_and_a_corrupt_one_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(History::load(dir.path()).unwrap().is_none());
    std::fs::write(dir.path().join(FILE), b"\x93not a history").unwrap();
    let error = History::load(dir.path()).unwrap_err();
    assert!(matches!(error, LoadError::Corrupt { .. }), "{error}");
    let other = rmp_serde::to_vec_named(&Saved { version: 99, buckets: vec![] }).unwrap();
    std::fs::write(dir.path().join(FILE), other).unwrap();
    assert!(History::load(dir.path()).unwrap_err().to_string().contains("format version 99"));
}
