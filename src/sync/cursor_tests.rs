use std::sync::Arc;

use super::*;
use crate::domain::test_support::{Order, options};
use crate::events::NewEvent;
use crate::log::Log;
use crate::projections::Projections;
use crate::sync::dead_letters::{self, DeadLetterStatus};
use crate::telemetry::Metrics;

fn open(dir: &std::path::Path) -> Log<Projections> {
    crate::domain::test_support::open(&options(dir), Arc::new(Metrics::new())).unwrap()
}

fn orders(n: usize) -> Vec<NewEvent> {
    (0..n).map(|i| Order::new(&format!("C-{i}"), &format!("P-{i}"), "ACC", &["PAT"]).event()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_and_dead_letters_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.handle().append(orders(3)).await.unwrap();
    assert_eq!(cursor(&log.reader()).unwrap(), 0);
    set_cursor(&log.handle(), 2).await.unwrap();
    let parked = dead_letters::park(&log.handle(), 3, "HL7MessageReceived".into(), "bad".into()).await.unwrap();
    assert_eq!((parked.status, parked.attempts), (DeadLetterStatus::Parked, 1));
    log.close().await.unwrap();
    let log = open(dir.path());
    assert_eq!(cursor(&log.reader()).unwrap(), 2);
    assert_eq!(dead_letters::all(&log.reader()).unwrap(), vec![(3, parked)]);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_neither_drops_nor_digests_the_sync_state() {
    use crate::projections::rebuild;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.handle().append(orders(4)).await.unwrap();
    set_cursor(&log.handle(), 3).await.unwrap();
    dead_letters::park(&log.handle(), 4, "X".into(), "r".into()).await.unwrap();
    log.close().await.unwrap();
    let opts = options(dir.path());
    let db = rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
    let before = rebuild::digest(&db).unwrap();
    assert!(before.iter().all(|d| !d.table.starts_with("sync") && d.table != "meta"), "{before:?}");
    rebuild::rebuild(&db, &opts.site, |_, _| {}).unwrap();
    assert_eq!(rebuild::digest(&db).unwrap(), before);
    assert!(rebuild::verify(&db, &opts.site, |_, _| {}).unwrap().is_empty());
    drop(db);
    let log = open(dir.path());
    assert_eq!(cursor(&log.reader()).unwrap(), 3);
    assert_eq!(dead_letters::all(&log.reader()).unwrap().len(), 1);
    log.close().await.unwrap();
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_moves_the_cursor_to_its_fork_point_and_clears_the_restore_mark() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let log = crate::domain::test_support::open(&opts, Arc::new(Metrics::new())).unwrap();
    log.handle().append(vec![Order::new("C-1", "P-1", "ACC", &["PAT"]).event()]).await.unwrap();
    set_cursor(&log.handle(), 1).await.unwrap();
    assert_eq!(epoch(&log.reader()).unwrap(), SyncEpoch::default());
    let id = log.reader().event_id(1).unwrap().unwrap();
    assert_eq!(Some(id), crate::events::get(&log.reader(), 1).unwrap().map(|e| e.event_id));
    assert_eq!(log.reader().event_id(2).unwrap(), None);
    log.close().await.unwrap();

    let db = crate::projections::rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
    mark_restored(&db, "2026-11-23T10:00:00Z".parse().unwrap()).unwrap();
    drop(db);
    let log = crate::domain::test_support::open(&opts, Arc::new(Metrics::new())).unwrap();
    assert_eq!(restored_at(&log.reader()).unwrap().as_deref(), Some("2026-11-23T10:00:00Z"));
    clear_restore_mark(&log.handle()).await.unwrap();
    assert_eq!(restored_at(&log.reader()).unwrap(), None);
    mark_restored_through(&log).await;
    start_epoch(&log.handle(), SyncEpoch { epoch: 1, fork_at: 0 }).await.unwrap();
    assert_eq!(epoch(&log.reader()).unwrap(), SyncEpoch { epoch: 1, fork_at: 0 });
    assert_eq!(cursor(&log.reader()).unwrap(), 0, "the cursor goes back to the fork point");
    assert_eq!(restored_at(&log.reader()).unwrap(), None);
    log.close().await.unwrap();
}

/// Sets the restore mark through the writer's own database (the daemon is not running in
/// `zenedge restore`; here the log is open, so the mark goes in as a request would).
async fn mark_restored_through(log: &Log<Projections>) {
    fn apply(t: &mut crate::log::Txn<'_, '_, Projections>, (): ()) -> Applied<()> {
        t.txn().open_table(META)?.insert(RESTORED_KEY, "2026-11-23T10:00:00Z")?;
        t.dirty = true;
        Ok(Ok(()))
    }
    log.handle().request((), apply).await.unwrap();
    assert!(restored_at(&log.reader()).unwrap().is_some());
}
