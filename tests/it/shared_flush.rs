//! Shared flushes: instances completed at about the same time on several associations are
//! made durable by one `syncfs` and recorded by one commit, and when that flush fails none
//! of them is acknowledged. (That a power loss at any point keeps every acknowledged instance
//! is `powerloss.rs`; the batch's flushes, not the rate, are asserted here.)

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use zenedge::app::RunError;
use zenedge::log::FaultInjector;
use zenedge::storage_hook::{StorageHook, StorageOp, Verdict};

use crate::support::TestDaemon;
use crate::support::dataset::{Instance, dataset};
use crate::support::scu::{self, Answer, CT_IMAGE_STORAGE, EXPLICIT_LE};

const OUT_OF_RESOURCES: u16 = 0xA700;

/// Holds the first `syncfs` until `renames` instance files were renamed into place (so the
/// others wait for the next batch together), and fails every `syncfs` when `fail` is set.
#[derive(Debug, Default)]
struct FlushHold {
    renames: usize,
    fail: bool,
    renamed: Mutex<usize>,
    changed: Condvar,
    flushes: AtomicUsize,
}

impl StorageHook for FlushHold {
    fn before(&self, op: StorageOp<'_>) -> io::Result<Verdict> {
        match op {
            StorageOp::Rename { .. } => {
                *self.renamed.lock().unwrap() += 1;
                self.changed.notify_all();
            }
            StorageOp::FsSync { .. } => {
                if self.flushes.fetch_add(1, Ordering::SeqCst) == 0 {
                    let renamed = self.renamed.lock().unwrap();
                    let (_held, timeout) = self
                        .changed
                        .wait_timeout_while(renamed, Duration::from_secs(60), |n| *n < self.renames)
                        .unwrap();
                    assert!(!timeout.timed_out(), "the other associations never renamed their files");
                }
                if self.fail {
                    return Err(io::Error::from_raw_os_error(5));
                }
            }
            _ => {}
        }
        Ok(Verdict::Proceed)
    }
}

/// Sends one instance on each of `associations` associations at once; their answers.
async fn store_at_once(d: &TestDaemon, study: u32, associations: u32) -> Vec<Answer> {
    let tasks: Vec<_> = (1..=associations)
        .map(|n| {
            let (addr, i) = (d.dicom, Instance::ct(study, 1, n));
            tokio::task::spawn_blocking(move || {
                let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
                // Dropped, not released: a daemon whose flush failed is stopping meanwhile.
                scu.store(CT_IMAGE_STORAGE, &i.sop, &dataset(&i, EXPLICIT_LE), 16_000)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("SCU"));
    }
    answers
}

/// The value of the metric line starting with `name ` in `metrics`.
fn metric(metrics: &str, name: &str) -> f64 {
    let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn instance_files(state: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with(".spool") {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&state.join("instances"), &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_completed_together_on_several_associations_share_one_flush_and_one_commit() {
    let hold = Arc::new(FlushHold { renames: 4, ..FlushHold::default() });
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let d = TestDaemon::start_with_faults(dir, "", FaultInjector::with_hook(hold.clone())).await;
    let answers = store_at_once(&d, 1, 4).await;
    assert!(answers.iter().all(|a| a.status == 0), "{answers:?}");
    let metrics = d.get("/metrics").await.body;
    // The first instance's flush waited for the other three: they came as one batch.
    let (flushes, batches) = (
        metric(&metrics, "zenedge_dicom_flushes_total"),
        metric(&metrics, "zenedge_dicom_flush_batch_instances_count"),
    );
    assert_eq!(metric(&metrics, "zenedge_dicom_flush_batch_instances_sum"), 4.0, "{metrics}");
    assert!(flushes < 4.0 && flushes == batches, "{flushes} flushes for 4 instances:\n{metrics}");
    assert_eq!(flushes as usize, hold.flushes.load(Ordering::SeqCst), "one syncfs per batch");
    assert_eq!(d.events().await.len(), 4);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_each_instance_flushed_on_its_own_no_file_system_flush_is_made() {
    let hold = Arc::new(FlushHold::default());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let faults = FaultInjector::with_hook(hold.clone());
    let d = TestDaemon::start_with_faults(dir, "[dicom]\nflush = \"each\"\n", faults).await;
    let answers = store_at_once(&d, 2, 2).await;
    assert!(answers.iter().all(|a| a.status == 0), "{answers:?}");
    assert_eq!(hold.flushes.load(Ordering::SeqCst), 0);
    let metrics = d.get("/metrics").await.body;
    assert_eq!(metric(&metrics, "zenedge_dicom_flushes_total"), 4.0, "file and directory, each: {metrics}");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_flush_fails_every_instance_of_its_batch_with_a700_records_none_and_stops_the_daemon() {
    let hold = Arc::new(FlushHold { renames: 3, fail: true, ..FlushHold::default() });
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let d = TestDaemon::start_with_faults(dir.clone(), "", FaultInjector::with_hook(hold.clone())).await;
    let answers = store_at_once(&d, 3, 3).await;
    for answer in &answers {
        assert_eq!(answer.status, OUT_OF_RESOURCES, "{answers:?}");
        assert!(answer.comment.as_deref().unwrap_or("").contains("cannot write the instance"), "{answer:?}");
    }
    let stopped = d.stopped().await;
    assert!(matches!(stopped, Err(RunError::InstanceFlush)), "the daemon stops for a clean start: {stopped:?}");
    assert_eq!(instance_files(dir.path()), Vec::<std::path::PathBuf>::new(), "the unflushed files are removed");

    let d = TestDaemon::start_in(dir.clone(), "").await;
    assert!(d.events().await.is_empty(), "nothing of the failed batch was recorded");
    let again = store_at_once(&d, 3, 3).await;
    assert!(again.iter().all(|a| a.status == 0), "the senders' retries are stored: {again:?}");
    assert_eq!(d.events().await.len(), 3);
    d.stop().await.unwrap();
}

/// Stores `i` on `d` and returns the answer.
async fn store_one(d: &TestDaemon, i: &Instance) -> Answer {
    let (addr, i) = (d.dicom, i.clone());
    tokio::task::spawn_blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let answer = scu.store(CT_IMAGE_STORAGE, &i.sop, &dataset(&i, EXPLICIT_LE), 16_000);
        scu.release();
        answer
    })
    .await
    .expect("SCU")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_a_power_loss_cut_short_after_its_rename_is_replaced_by_the_resent_instance() {
    let i = Instance::ct(4, 1, 1);
    let data = dataset(&i, EXPLICIT_LE);
    // Where the instance goes, and its file, from a scratch daemon.
    let scratch = TestDaemon::start().await;
    assert_eq!(store_one(&scratch, &i).await.status, 0);
    let path = scratch.events().await[0]["data"]["file_path"].as_str().expect("file_path").to_owned();
    let whole = std::fs::read(scratch.dir.path().join(&path)).unwrap();
    scratch.stop().await.unwrap();
    // A state directory where the rename reached the disk and only half the data did.
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let file = dir.path().join(&path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &whole[..whole.len() / 2]).unwrap();
    let d = TestDaemon::start_in(dir.clone(), "").await;
    assert_eq!(store_one(&d, &i).await.status, 0);
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["file_path"], path.as_str());
    let stored = std::fs::read(&file).unwrap();
    assert!(stored.ends_with(&data), "the file holds the whole data set ({} bytes of {})", stored.len(), whole.len());
    assert_eq!(events[0]["data"]["size"], stored.len() as u64);
    d.stop().await.unwrap();
}
