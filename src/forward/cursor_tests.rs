use std::sync::Arc;

use super::record_round;
use crate::audit::Requester;
use crate::domain::test_support::options;
use crate::events::{ForwardStatus, InstanceForwarded};
use crate::forward::dead_letters::*;
use crate::telemetry::Metrics;

fn answer(status: ForwardStatus) -> InstanceForwarded {
    InstanceForwarded {
        destination: "central".into(),
        sop_instance_uid: "1.2.3.4".into(),
        study_instance_uid: "1.2.3".into(),
        instance_seq: 5,
        status,
        peer_status: (status == ForwardStatus::Refused).then_some(0xA700),
        answer: Some("out of resources".into()),
        confirmed: status == ForwardStatus::Stored,
        commitment_transaction_uid: None,
    }
}

fn audited(what: &'static str) -> AuditOf {
    Box::new(move |letter, at| {
        let about = ("central", letter.study_instance_uid.as_str(), letter.sop_instance_uid.as_str());
        crate::audit::kinds::forward_letter_changed("e", &Requester::default(), "/p", what, about, at)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_instances_are_parked_and_operator_actions_follow_the_status_rules() {
    use DeadLetterAction::{Retry as RetryIt, Skip};
    use DeadLetterStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let schema = crate::projections::schema().with(crate::audit::tables()).with(crate::forward::tables());
    let log = crate::projections::open_log(&options(dir.path()), schema, Arc::new(Metrics::new()), None).unwrap();
    let (h, reader) = (log.handle(), log.reader());
    let act = |action, what| act(&h, "central".into(), 5, action, audited(what));
    assert_eq!(act(RetryIt, "retry").await.unwrap(), Err(Refusal::NotFound));
    assert_eq!(counts(&reader, "central").unwrap(), LetterCounts::default());

    record_round(&h, "central".into(), vec![(answer(ForwardStatus::Refused), 3)], 5).await.unwrap();
    let parked = &all(&reader).unwrap()[0];
    assert_eq!((parked.destination.as_str(), parked.instance_seq), ("central", 5));
    let l = &parked.letter;
    assert_eq!((l.status, l.attempts, l.sends, l.peer_status), (Parked, 1, 3, Some(0xA700)));
    assert_eq!(counts(&reader, "central").unwrap().open(), 1);
    assert!(counts(&reader, "other").unwrap() == LetterCounts::default(), "letters are per destination");

    let trail_before = crate::audit::last_id(&reader).unwrap();
    assert_eq!(act(RetryIt, "retry").await.unwrap().unwrap().status, Retry);
    assert_eq!(crate::audit::last_id(&reader).unwrap(), trail_before + 1, "the action commits its audit record");
    assert_eq!(to_retry(&reader, "central").unwrap(), vec![5]);
    assert_eq!(act(RetryIt, "retry").await.unwrap(), Err(Refusal::WrongState(Retry)));
    assert_eq!(crate::audit::last_id(&reader).unwrap(), trail_before + 1, "a refused action records nothing");

    record_round(&h, "central".into(), vec![(answer(ForwardStatus::Refused), 2)], 5).await.unwrap();
    let again = all(&reader).unwrap()[0].letter.clone();
    assert_eq!((again.status, again.attempts, again.sends), (Parked, 2, 5));
    assert!(to_retry(&reader, "central").unwrap().is_empty());

    assert_eq!(act(Skip, "skip").await.unwrap().unwrap().status, Skipped);
    record_round(&h, "central".into(), vec![(answer(ForwardStatus::Refused), 1)], 5).await.unwrap();
    assert_eq!(all(&reader).unwrap()[0].letter.status, Skipped, "a skipped letter stays skipped");

    act(RetryIt, "retry").await.unwrap().unwrap();
    record_round(&h, "central".into(), vec![(answer(ForwardStatus::Stored), 1)], 5).await.unwrap();
    assert_eq!(all(&reader).unwrap()[0].letter.status, Delivered);
    assert_eq!(act(Skip, "skip").await.unwrap(), Err(Refusal::WrongState(Delivered)));
    let c = counts(&reader, "central").unwrap();
    assert_eq!((c.delivered, c.open()), (1, 0));
    log.close().await.unwrap();
}
