use super::*;

#[test]
fn only_opened_listeners_are_shown_with_their_answers_and_last_error() {
    let a = Activity::new();
    assert!(a.listeners(Timestamp::now()).is_empty());
    a.opened(Listener::Dicom, "127.0.0.1:11112");
    a.opened(Listener::Mllp, "127.0.0.1:2575");
    let now = Timestamp::now();
    a.answered_at(Listener::Mllp, now, None);
    a.answered_at(Listener::Mllp, now, Some("AR: disk reserve"));
    a.closed(Listener::Dicom);
    let views = a.listeners(now);
    assert_eq!(views.iter().map(|v| v.listener).collect::<Vec<_>>(), [Listener::Mllp, Listener::Dicom]);
    let mllp = &views[0];
    assert!(mllp.up);
    assert_eq!((mllp.last_hour, mllp.last_day, mllp.negative_last_day), (2, 2, 1));
    assert_eq!((mllp.answered, mllp.negative), (2, 1));
    assert_eq!(mllp.last_answer_at.map(|t| t.as_microsecond()), Some(now.as_microsecond()));
    assert_eq!(mllp.last_error.as_ref().map(|e| e.text.as_str()), Some("AR: disk reserve"));
    assert!(!views[1].up, "closed");
    assert_eq!(views[1].last_answer_at, None);
}

#[test]
fn a_restored_history_gives_the_day_counts_but_not_the_counts_since_start() {
    let a = Activity::new();
    let now = Timestamp::now();
    a.answered_at(Listener::Dicom, now, None);
    let b = Activity::new();
    b.restore(History::decode(&a.encode(now)).unwrap());
    b.opened(Listener::Dicom, "x");
    let view = &b.listeners(now)[0];
    assert_eq!((view.last_day, view.answered), (1, 0));
    assert_eq!(b.per_minute(&Listener::INSTANCES, now).iter().sum::<u64>(), 1);
}
