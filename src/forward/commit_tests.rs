use std::time::{Duration, Instant};

use super::Asked;

#[test]
fn a_transaction_is_asked_once_then_again_only_after_the_timeout_and_forgotten_once_answered() {
    let mut asked = Asked::default();
    let (t0, timeout) = (Instant::now(), Duration::from_secs(60));
    let pending = vec!["2.25.1".to_owned(), "2.25.2".to_owned()];
    assert_eq!(asked.due(&pending, t0, timeout), pending, "never asked in this run: both");
    asked.asked("2.25.1", t0);
    assert!(asked.was_asked("2.25.1") && !asked.was_asked("2.25.2"));
    assert_eq!(asked.due(&pending, t0 + Duration::from_secs(59), timeout), ["2.25.2"]);
    assert_eq!(asked.due(&pending, t0 + timeout, timeout), pending, "overdue: asked again");
    // Its report came: no longer pending, forgotten.
    assert!(asked.due(&pending[1..], t0, timeout).contains(&"2.25.2".to_owned()));
    assert!(!asked.was_asked("2.25.1"));
}
