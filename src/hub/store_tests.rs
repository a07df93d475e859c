//! The hub's store: batches only right after `stored_through`, the chain, skipped numbers and
//! their redelivery, epochs beside epoch 0, and files of older and newer layouts.

use super::*;
use crate::sync::wire::{self, EnvelopeHead};

/// An envelope of `edge` at `seq` whose event id is `id`, as the edge stores it.
fn received_with(seq: u64, edge: &str, id: u128) -> Received {
    #[derive(serde::Serialize)]
    struct E<'a> {
        seq: u64,
        event_id: uuid::Uuid,
        event_type: &'a str,
        edge_id: &'a str,
    }
    let event_id = uuid::Uuid::from_u128(id);
    let bytes = rmp_serde::to_vec_named(&E { seq, event_id, event_type: "Test", edge_id: edge }).unwrap();
    let head = EnvelopeHead { seq, event_id, event_type: "Test".into(), edge_id: edge.into() };
    Received { head, bytes }
}

fn received(seq: u64, edge: &str) -> Received {
    received_with(seq, edge, u128::from(seq))
}

fn range(first: u64, last: u64) -> BatchRange {
    BatchRange { first, last, prev_event_id: None }
}

fn at(seq: u64, id: u128) -> Option<EventRef> {
    Some(EventRef { seq, event_id: uuid::Uuid::from_u128(id) })
}

#[test]
fn a_batch_is_stored_only_right_after_stored_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let batch: Vec<_> = (1..=3).map(|s| received(s, "e")).collect();
    let empty = HubPosition { stored_through: 0, last_event: None };
    assert_eq!(store.append("e", 0, range(2, 4), &batch, &[]).unwrap(), Appended::OutOfOrder(empty));
    let three = HubPosition { stored_through: 3, last_event: at(3, 3) };
    assert_eq!(store.append("e", 0, range(1, 3), &batch, &[]).unwrap(), Appended::Stored(three));
    assert_eq!(store.append("e", 0, range(1, 3), &batch, &[]).unwrap(), Appended::OutOfOrder(three));
    assert_eq!(store.events("e", 0, 10).unwrap().len(), 3);
    assert_eq!(store.events("e", 1, 1).unwrap(), vec![(2, batch[1].bytes.clone())]);
    assert_eq!(store.events("e", u64::MAX, 10).unwrap(), vec![]);
    assert_eq!(store.stored_through("other").unwrap(), 0);
    assert!(store.events("other", 0, 10).unwrap().is_empty());
}

#[test]
fn a_batch_whose_predecessor_is_another_event_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let first: Vec<_> = (1..=3).map(|s| received(s, "e")).collect();
    store.append("e", 0, range(1, 3), &first, &[]).unwrap();
    let next = [received_with(4, "e", 400)];
    let other = BatchRange { first: 4, last: 4, prev_event_id: Some(uuid::Uuid::from_u128(33)) };
    let refused = store.append("e", 0, other, &next, &[]).unwrap();
    let position = HubPosition { stored_through: 3, last_event: at(3, 3) };
    assert_eq!(refused, Appended::ChainBroken { position, seq: 3, held: uuid::Uuid::from_u128(3) });
    assert_eq!(store.stored_through("e").unwrap(), 3, "nothing stored");
    let same = BatchRange { first: 4, last: 4, prev_event_id: Some(uuid::Uuid::from_u128(3)) };
    assert!(matches!(store.append("e", 0, same, &next, &[]).unwrap(), Appended::Stored(_)));
}

#[test]
fn skipped_sequence_numbers_are_recorded_until_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let batch = [received(1, "e"), received(3, "e")];
    wire::check_batch("e", 1, 4, &batch, &[2, 4]).unwrap();
    store.append("e", 0, range(1, 4), &batch, &[2, 4]).unwrap();
    assert_eq!(store.skipped("e").unwrap(), vec![2, 4]);
    let position = HubPosition { stored_through: 4, last_event: at(3, 3) };
    assert_eq!(store.redeliver("e", 0, &received(2, "e")).unwrap(), Redelivered::Stored(position));
    assert_eq!(store.redeliver("e", 0, &received(2, "e")).unwrap(), Redelivered::AlreadyStored(position));
    assert_eq!(store.redeliver("e", 0, &received(5, "e")).unwrap(), Redelivered::NotSkipped(position));
    let summary = store.position("e", 0, None).unwrap().unwrap();
    assert_eq!((summary.stored_through, summary.events, summary.skipped), (4, 3, vec![4]));
    assert_eq!(summary.last_event, Some(at(3, 3)));
}

#[test]
fn a_fork_keeps_both_histories_and_reads_each_one_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    // History A: 1..=6. History B shares 1..=3, then has its own 4..=5.
    let a: Vec<_> = (1..=6).map(|s| received(s, "e")).collect();
    store.append("e", 0, range(1, 6), &a, &[]).unwrap();
    let request = ForkRequest { parent: 0, fork_at: 3, fork_event_id: Some(uuid::Uuid::from_u128(3)) };
    let forked = Forked { epoch: 1, parent: 0, fork_at: 3, stored_through: 3 };
    assert_eq!(store.fork("e", &request).unwrap(), ForkOutcome::Created(forked.clone()));
    assert_eq!(store.fork("e", &request).unwrap(), ForkOutcome::Existing(forked), "the same request again");
    let position = store.position("e", 1, Some(2)).unwrap().unwrap();
    assert_eq!((position.stored_through, position.fork_at, position.parent), (3, 3, Some(0)));
    assert_eq!(position.last_event, Some(at(3, 3)), "the parent's event at the fork point");
    assert_eq!(position.event_at, Some(at(2, 2)));
    let b: Vec<_> = (4..=5).map(|s| received_with(s, "e", 1000 + u128::from(s))).collect();
    let linked = BatchRange { first: 4, last: 5, prev_event_id: Some(uuid::Uuid::from_u128(3)) };
    assert!(matches!(store.append("e", 1, linked, &b, &[]).unwrap(), Appended::Stored(_)));
    let (history_b, through) = store.history("e", 1, 0, 100).unwrap().unwrap();
    assert_eq!(through, 5);
    let seen: Vec<_> = history_b.iter().map(|(seq, epoch, _)| (*seq, *epoch)).collect();
    assert_eq!(seen, [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]);
    assert_eq!(history_b[3].2, b[0].bytes);
    let (history_a, through) = store.history("e", 0, 0, 100).unwrap().unwrap();
    assert_eq!((history_a.len(), through), (6, 6), "epoch 0 keeps everything it held");
    assert_eq!(store.history("e", 1, 2, 2).unwrap().unwrap().0.iter().map(|i| i.0).collect::<Vec<_>>(), [3, 4]);
    let listed = store.position("e", 0, None).unwrap().unwrap().epochs;
    assert_eq!(
        listed.iter().map(|e| (e.epoch, e.fork_at, e.stored_through)).collect::<Vec<_>>(),
        [(0, 0, 6), (1, 3, 5)]
    );
    assert!(store.position("e", 2, None).unwrap().is_none());
    assert_eq!(store.append("e", 2, range(1, 1), &a[..1], &[]).unwrap(), Appended::NoEpoch);
}

#[test]
fn a_fork_is_refused_beyond_the_parent_or_at_another_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    store.append("e", 0, range(1, 2), &[received(1, "e"), received(2, "e")], &[]).unwrap();
    let beyond = ForkRequest { parent: 0, fork_at: 3, fork_event_id: Some(uuid::Uuid::from_u128(3)) };
    assert_eq!(store.fork("e", &beyond).unwrap(), ForkOutcome::BeyondParent { stored_through: 2 });
    let other = ForkRequest { parent: 0, fork_at: 2, fork_event_id: Some(uuid::Uuid::from_u128(99)) };
    assert_eq!(store.fork("e", &other).unwrap(), ForkOutcome::EventDiffers { held: at(2, 2) });
    let orphan = ForkRequest { parent: 4, fork_at: 0, fork_event_id: None };
    assert_eq!(store.fork("e", &orphan).unwrap(), ForkOutcome::NoParent);
    assert_eq!(store.position("e", 0, None).unwrap().unwrap().epochs.len(), 1, "no epoch was made");
}

#[test]
fn a_database_from_a_newer_hub_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    {
        let db = Database::create(database_path(dir.path())).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", SCHEMA_VERSION + 1).unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, HubError::NewerSchema { .. }), "{err}");
}

#[test]
fn a_database_of_the_first_layout_opens_and_keeps_its_events_as_epoch_0() {
    // Schema 1: hub_meta, edges, events, skipped; no epochs table.
    let dir = tempfile::tempdir().unwrap();
    let one = received(1, "e");
    {
        let db = Database::create(database_path(dir.path())).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("schema_version", 1).unwrap();
        txn.open_table(EDGES).unwrap().insert("e", (2, 1)).unwrap();
        txn.open_table(EVENTS).unwrap().insert(("e", 1), one.bytes.as_slice()).unwrap();
        txn.open_table(SKIPPED).unwrap().insert(("e", 2), ()).unwrap();
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.stored_through("e").unwrap(), 2);
    assert_eq!(store.events("e", 0, 10).unwrap(), vec![(1, one.bytes.clone())]);
    assert_eq!(store.skipped("e").unwrap(), vec![2]);
    let next = BatchRange { first: 3, last: 3, prev_event_id: Some(one.head.event_id) };
    assert!(matches!(store.append("e", 0, next, &[received(3, "e")], &[]).unwrap(), Appended::Stored(_)));
}
