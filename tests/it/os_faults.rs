//! Invariant 1 against faults from the operating system, with the real binary: nothing is
//! acknowledged that is not durable, whatever the kernel answers, and every acknowledged
//! message and instance is there after the restart.
//!
//! * **Injected I/O errors** (libfiu's POSIX wrappers preloaded with `fiu-run -x`, switched
//!   on with `fiu-ctrl` while the daemon runs): the log's `fdatasync` or `pwrite` failing
//!   makes the commit fail: `AR`, and the process exits non-zero for systemd to restart it on
//!   a clean reopen. With each instance flushed on its own (`dicom.flush = "each"`), an
//!   instance file's `fdatasync` or its directory's `fsync` failing fails that C-STORE
//!   (`0xA700`) and nothing else: no event names the file, the daemon goes on. (libfiu does
//!   not wrap `syncfs`: a failing flush of shared flushes is injected in-process, in
//!   `shared_flush.rs`.) The other tests run with shared flushes, the default.
//!   A `write(2)` failure is not injected this way (the wrapper cannot tell a spool file from
//!   a socket or tokio's eventfd); instance writes fail for real below, with `ENOSPC` and
//!   `EROFS`.
//! * **Full disk** (a small tmpfs as the state directory, filled from outside): below the
//!   reserve, `AR`, `0xA700` and `/readyz` 503, and intake resumes by itself once space
//!   returns. Past the reserve check (the disk fills between the check and the write), an
//!   instance write hitting `ENOSPC` fails that C-STORE only; a commit hitting it fails like
//!   any commit (the process exits), and the restarted daemon comes up on the full disk,
//!   refusing, and resumes by itself.
//! * **Read-only file system.** `mount -o remount,ro` is refused by the kernel (`EBUSY`)
//!   while the daemon holds its files open for writing, so under a running daemon only the
//!   kernel makes it read-only: an ext4 error with `errors=remount-ro` (a failing disk,
//!   simulated through ext4's `trigger_fs_error`). `/readyz` says so, C-STORE gets `0xA700`,
//!   the next commit fails and the process exits; the journal is aborted, so the file
//!   system comes back only through unmount, `e2fsck` and mount, after which the daemon
//!   starts with everything acknowledged. A state directory read-only at start stops the
//!   start (exit 1, the error named) and a start after `remount,rw` works.
//!
//! Each test prints why it is skipped when it cannot run here: mounting needs root, the
//! injection needs fiu-utils (`.ci/run` installs it).

use std::path::{Path, PathBuf};

use crate::support::acked::Acked;
use crate::support::dataset::Instance;
use crate::support::hl7msg::orm;
use crate::support::http;
use crate::support::osfault::{Mount, Needs, Zenedge, fill, free_bytes, skip_reason};

const OUT_OF_RESOURCES: u16 = 0xA700;
const MIB: u64 = 1 << 20;

fn skipped(test: &str, needs: Needs) -> bool {
    match skip_reason(needs) {
        Some(reason) => {
            println!("{test}: skipped: {reason}");
            true
        }
        None => false,
    }
}

/// A temp dir with the config, the state directory (maybe a mount) and libfiu's fifos.
/// The mount is the first field: it is undone before the temp dir is removed, also when a
/// test fails.
struct Scene {
    mount: Option<Mount>,
    scratch: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

impl Scene {
    /// `reserve`: `store.disk_reserve`. Studies never complete during a test (no commit of
    /// the daemon's own, so an injected fault meets the request the test sends).
    fn new(reserve: &str) -> Scene {
        Scene::flushing(reserve, "shared")
    }

    /// As [`Scene::new`], with `dicom.flush = flush`.
    fn flushing(reserve: &str, flush: &str) -> Scene {
        let scratch = tempfile::tempdir().expect("temp dir");
        let state = scratch.path().join("state");
        let config = scratch.path().join("zenedge.toml");
        std::fs::write(
            &config,
            format!(
                "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n\
                 [store]\nstate_dir = {:?}\ndisk_reserve = {reserve:?}\n\
                 [mllp]\nlisten = \"127.0.0.1:0\"\n\
                 [dicom]\nlisten = \"127.0.0.1:0\"\nstable_after = \"1h\"\nflush = {flush:?}\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n{}",
                state.display().to_string(),
                crate::support::access::client_toml(),
            ),
        )
        .unwrap();
        Scene { mount: None, scratch, config, state }
    }

    fn mount(&self) -> &Mount {
        self.mount.as_ref().expect("the state directory is a mount")
    }

    fn start(&self) -> Zenedge {
        Zenedge::start(&self.config, None).unwrap_or_else(|e| panic!("zenedge did not start: {e}"))
    }

    fn start_under_fiu(&self) -> Zenedge {
        let fifo = self.scratch.path().join("fiu-ctrl");
        Zenedge::start(&self.config, Some(&fifo)).unwrap_or_else(|e| panic!("zenedge did not start: {e}"))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking test step")
}

/// Stops the daemon, starts it again on the same state, checks that everything acknowledged
/// is there, once, and stops it.
async fn restart_and_check(mut daemon: Zenedge, scene: Scene, acked: &Acked) {
    let (mut daemon, scene) = blocking(move || {
        daemon.stop();
        (scene.start(), scene)
    })
    .await;
    acked.check(daemon.http, &scene.state).await;
    blocking(move || daemon.stop()).await;
}

/// Stored instance files (not the spool of files being received or prepared).
fn instance_files(state: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != ".spool") {
                    walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&state.join("instances"), &mut out);
    out.sort();
    out
}

/// Spool files holding data (prepared spool files are empty).
fn spooled_data(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("instances/.spool"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
        .map(|e| e.path())
        .collect()
}

/// An order with a text of `bytes` bytes (OBX-5): a commit that has to grow the database.
/// An order carrying `bytes` of text that does not compress (the log stores event values
/// compressed: a repeated letter would shrink to almost nothing).
fn big_order(control_id: &str, bytes: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut message = orm(control_id, &format!("ACC-{control_id}"));
    message.extend_from_slice(b"OBX|1|TX|REPORT^Report||");
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    message.extend(
        std::iter::repeat_with(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize]
        })
        .take(bytes),
    );
    message.extend_from_slice(b"\r");
    message
}

// ---------------------------------------------------------------------------------------
// Injected I/O errors (libfiu)
// ---------------------------------------------------------------------------------------

/// A commit whose file operation `point` fails: `AR`, exit non-zero, and the restart has
/// everything acknowledged; the refused message, re-sent, is stored once.
async fn a_failing_log_operation_stops_the_daemon(test: &str, point: &str) {
    if skipped(test, Needs::Fiu) {
        return;
    }
    let scene = Scene::new("0");
    let (mut daemon, scene) = blocking(move || (scene.start_under_fiu(), scene)).await;
    let mut acked = Acked::default();
    for n in 1..=3 {
        assert_eq!(acked.order(daemon.mllp, &format!("LOG-{n}")).await, "AA");
    }
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(1, 1, 1)).await.status, 0);
    daemon.fiu(&format!("enable name={point},failinfo=5"));
    assert_eq!(acked.order(daemon.mllp, "LOG-FAILED").await, "AR", "a failed commit is never acknowledged");
    let (status, daemon) = blocking(move || (daemon.exited(), daemon)).await;
    assert_eq!(status.code(), Some(1), "a failed commit stops the daemon with an error:\n{}", daemon.stderr());
    assert!(daemon.stderr().contains("event log commit failed"), "{}", daemon.stderr());
    drop(daemon);

    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let ready = http::get(daemon.http, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    acked.check(daemon.http, &scene.state).await;
    assert_eq!(acked.order(daemon.mllp, "LOG-FAILED").await, "AA", "the sender's re-send is stored");
    acked.check(daemon.http, &scene.state).await;
    blocking(move || daemon.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_fsync_is_answered_ar_and_exits_non_zero_and_the_restart_has_every_acknowledged_item() {
    a_failing_log_operation_stops_the_daemon("log fdatasync", "posix/io/sync/fdatasync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_write_is_answered_ar_and_exits_non_zero_and_the_restart_has_every_acknowledged_item() {
    a_failing_log_operation_stops_the_daemon("log pwrite", "posix/io/rw/pwrite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_fsync_fails_that_c_store_with_a700_and_the_daemon_keeps_taking_data() {
    if skipped("instance fdatasync", Needs::Fiu) {
        return;
    }
    let scene = Scene::flushing("0", "each");
    let (mut daemon, scene) = blocking(move || (scene.start_under_fiu(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(2, 1, 1)).await.status, 0);
    let stored_before = instance_files(&scene.state);
    daemon.fiu("enable name=posix/io/sync/fdatasync,failinfo=5");
    let failed = acked.store(daemon.dicom, &Instance::ct(2, 1, 2)).await;
    daemon.fiu("disable name=posix/io/sync/fdatasync");
    assert_eq!(failed.status, OUT_OF_RESOURCES, "{failed:?}");
    assert!(failed.comment.as_deref().unwrap_or("").contains("cannot write the instance"), "{failed:?}");
    assert_eq!(instance_files(&scene.state), stored_before, "the file that was not synced is not kept");
    assert!(spooled_data(&scene.state).is_empty(), "nor is its spool file");
    assert!(daemon.running(), "one instance file failing does not stop the daemon");
    assert_eq!(http::get(daemon.http, "/readyz").await.status, 200);
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(2, 1, 2)).await.status, 0, "the re-send is stored");
    assert_eq!(acked.order(daemon.mllp, "AFTER-INSTANCE-FSYNC").await, "AA");
    let events = http::all_events(daemon.http).await;
    assert_eq!(events.len(), 3, "no event for the failed C-STORE: {events:?}");
    restart_and_check(daemon, scene, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_directory_fsync_fails_that_c_store_and_a_resend_succeeds_only_once_the_directory_is_synced() {
    if skipped("directory fsync", Needs::Fiu) {
        return;
    }
    let scene = Scene::flushing("0", "each");
    let (mut daemon, scene) = blocking(move || (scene.start_under_fiu(), scene)).await;
    let mut acked = Acked::default();
    // The study and series directories exist: the next instance's only directory fsync is
    // the one after its rename.
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(3, 1, 1)).await.status, 0);
    daemon.fiu("enable name=posix/io/sync/fsync,failinfo=5");
    let second = Instance::ct(3, 1, 2);
    let failed = acked.store(daemon.dicom, &second).await;
    assert_eq!(failed.status, OUT_OF_RESOURCES, "{failed:?}");
    // The renamed file stays (no event names it); a re-send of the same bytes finds it in
    // place. While its directory cannot be synced, that is no success either.
    let again = acked.store(daemon.dicom, &second).await;
    assert_eq!(again.status, OUT_OF_RESOURCES, "a file whose directory entry is not durable is not stored: {again:?}");
    daemon.fiu("disable name=posix/io/sync/fsync");
    assert!(daemon.running(), "a directory fsync failing does not stop the daemon");
    assert_eq!(acked.store(daemon.dicom, &second).await.status, 0, "the re-send is stored once the fsync works");
    assert_eq!(acked.order(daemon.mllp, "AFTER-DIR-FSYNC").await, "AA");
    let (mut daemon, scene) = blocking(move || {
        daemon.stop();
        (scene.start(), scene)
    })
    .await;
    acked.check(daemon.http, &scene.state).await;
    assert_eq!(http::all_events(daemon.http).await.len(), 3, "one event per acknowledged item, none for the failures");
    blocking(move || daemon.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_rename_into_place_fails_that_c_store_and_leaves_no_file() {
    if skipped("instance rename", Needs::Fiu) {
        return;
    }
    let scene = Scene::new("0");
    let (mut daemon, scene) = blocking(move || (scene.start_under_fiu(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(4, 1, 1)).await.status, 0);
    let stored_before = instance_files(&scene.state);
    daemon.fiu("enable name=posix/io/dir/rename,failinfo=5");
    let failed = acked.store(daemon.dicom, &Instance::ct(4, 1, 2)).await;
    daemon.fiu("disable name=posix/io/dir/rename");
    assert_eq!(failed.status, OUT_OF_RESOURCES, "{failed:?}");
    assert_eq!(instance_files(&scene.state), stored_before);
    assert!(spooled_data(&scene.state).is_empty(), "the spool file is removed");
    assert!(daemon.running());
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(4, 1, 2)).await.status, 0);
    restart_and_check(daemon, scene, &acked).await;
}

// ---------------------------------------------------------------------------------------
// Full disk (tmpfs)
// ---------------------------------------------------------------------------------------

/// A scene whose state directory is a tmpfs of `size`; `None` (after printing why) when it
/// cannot be mounted here.
fn tmpfs_scene(test: &str, reserve: &str, size: &str) -> Option<Scene> {
    if skipped(test, Needs::Root) {
        return None;
    }
    let mut scene = Scene::new(reserve);
    match Mount::tmpfs(&scene.state, size) {
        Ok(mount) => {
            scene.mount = Some(mount);
            Some(scene)
        }
        Err(e) => {
            println!("{test}: skipped: cannot mount a tmpfs: {e}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_with_ar_and_a700_reported_by_readyz_and_intake_resumes_when_space_returns() {
    let Some(scene) = tmpfs_scene("disk full", "4MiB", "48m") else { return };
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.order(daemon.mllp, "FULL-1").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(10, 1, 1)).await.status, 0);

    let filler = fill(&scene.mount().dir, "filler", 2 * MIB);
    assert_eq!(acked.order(daemon.mllp, "FULL-2").await, "AR");
    let refused = acked.store(daemon.dicom, &Instance::ct(10, 1, 2)).await;
    assert_eq!(refused.status, OUT_OF_RESOURCES, "{refused:?}");
    assert!(refused.comment.as_deref().unwrap_or("").contains("disk reserve"), "{refused:?}");
    let ready = http::get(daemon.http, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["disk_reserve"]["ok"], false, "{}", ready.body);

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(http::get(daemon.http, "/readyz").await.status, 200);
    assert_eq!(acked.order(daemon.mllp, "FULL-2").await, "AA", "intake resumes without a restart");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(10, 1, 2)).await.status, 0);
    assert!(daemon.running());
    acked.check(daemon.http, &scene.state).await;
    restart_and_check(daemon, scene, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_write_hitting_enospc_past_the_reserve_check_fails_that_c_store_only() {
    let Some(scene) = tmpfs_scene("instance ENOSPC", "2MiB", "48m") else { return };
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.order(daemon.mllp, "SPOOL-1").await, "AA");
    // Above the reserve when the C-STORE starts, too little for the instance: its writes hit
    // ENOSPC (what a disk filling between the check and the write does).
    let filler = fill(&scene.mount().dir, "filler", 3 * MIB);
    assert!(free_bytes(&scene.mount().dir) > 2 * MIB);
    let big = Instance { pixel_bytes: 6 << 20, ..Instance::ct(11, 1, 1) };
    let failed = acked.store(daemon.dicom, &big).await;
    assert_eq!(failed.status, OUT_OF_RESOURCES, "{failed:?}");
    assert!(failed.comment.as_deref().unwrap_or("").contains("cannot write the instance"), "{failed:?}");
    assert!(daemon.running(), "an instance write failing does not stop the daemon");
    assert!(spooled_data(&scene.state).is_empty(), "the partial instance is removed");
    assert!(instance_files(&scene.state).is_empty());
    assert_eq!(acked.order(daemon.mllp, "SPOOL-2").await, "AA", "small messages still fit above the reserve");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(acked.store(daemon.dicom, &big).await.status, 0, "the re-send is stored once space returns");
    restart_and_check(daemon, scene, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_hitting_enospc_past_the_reserve_check_exits_and_the_restart_on_the_full_disk_refuses_then_resumes() {
    let Some(scene) = tmpfs_scene("commit ENOSPC", "2MiB", "48m") else { return };
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.order(daemon.mllp, "GROW-1").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(12, 1, 1)).await.status, 0);
    // Above the reserve at the batch's check; the commit has to grow the database by more
    // than is left.
    let filler = fill(&scene.mount().dir, "filler", 3 * MIB);
    let big = big_order("GROW-BIG", 6 << 20);
    assert_eq!(acked.hl7(daemon.mllp, &big, "GROW-BIG").await, "AR", "a commit that failed is not acknowledged");
    let (status, daemon) = blocking(move || (daemon.exited(), daemon)).await;
    assert_eq!(status.code(), Some(1), "{}", daemon.stderr());
    drop(daemon);

    // systemd restarts it while the disk is still full: it comes up, refuses and says why.
    fill(&scene.mount().dir, "filler-2", MIB);
    let (started, scene) = blocking(move || (Zenedge::start(&scene.config, None), scene)).await;
    let mut daemon = started.unwrap_or_else(|e| panic!("zenedge must start on a full disk and refuse: {e}"));
    let ready = http::get(daemon.http, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["disk_reserve"]["ok"], false, "{}", ready.body);
    assert_eq!(acked.order(daemon.mllp, "GROW-2").await, "AR");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(12, 1, 2)).await.status, OUT_OF_RESOURCES);
    // Reads of patient data need their audit record, which is new data too: refused (503).
    let read = http::get(daemon.http, "/api/v1/events").await;
    assert_eq!(read.status, 503, "{}", read.body);
    assert!(read.body.contains("disk_reserve"), "{}", read.body);

    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(scene.mount().dir.join("filler-2")).unwrap();
    assert_eq!(http::get(daemon.http, "/readyz").await.status, 200);
    acked.check(daemon.http, &scene.state).await;
    assert_eq!(acked.hl7(daemon.mllp, &big, "GROW-BIG").await, "AA", "intake resumes without another restart");
    assert_eq!(acked.order(daemon.mllp, "GROW-2").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(12, 1, 2)).await.status, 0);
    assert!(daemon.running());
    restart_and_check(daemon, scene, &acked).await;
}

// ---------------------------------------------------------------------------------------
// Read-only file system
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_turning_read_only_is_reported_refused_and_stops_the_daemon_and_nothing_acknowledged_is_lost() {
    let test = "read-only ext4";
    if skipped(test, Needs::Root) {
        return;
    }
    let mut scene = Scene::new("0");
    let image = scene.scratch.path().join("state.ext4");
    scene.mount = match Mount::ext4(&image, &scene.state, 64) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("{test}: skipped: cannot mount an ext4 image: {e}");
            return;
        }
    };
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.order(daemon.mllp, "RO-1").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(20, 1, 1)).await.status, 0);
    assert_eq!(http::get(daemon.http, "/readyz").await.status, 200);

    scene.mount().trigger_ext4_error().unwrap();
    let ready = http::get(daemon.http, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let fs = &ready.json()["checks"]["filesystem"];
    assert_eq!(fs["writable"], false, "{}", ready.body);
    assert!(fs["error"].as_str().unwrap_or("").contains("Read-only"), "{}", ready.body);
    let refused = acked.store(daemon.dicom, &Instance::ct(20, 1, 2)).await;
    assert_eq!(refused.status, OUT_OF_RESOURCES, "{refused:?}");
    assert!(daemon.running(), "an instance that cannot be written fails alone");
    assert_eq!(acked.order(daemon.mllp, "RO-2").await, "AR");
    let (status, daemon) = blocking(move || (daemon.exited(), daemon)).await;
    assert_eq!(status.code(), Some(1), "{}", daemon.stderr());
    drop(daemon);

    // ext4 aborted its journal, so it refuses `remount,rw`: the file system comes back
    // through unmount, fsck, mount (the daemon, stopped, holds nothing open on it).
    let mut scene = scene;
    let mount = scene.mount.as_mut().expect("mounted");
    println!("{test}: remount,rw after the error: {:?}", mount.remount("rw"));
    mount.unmount().unwrap();
    let fsck = std::process::Command::new("e2fsck").args(["-f", "-y"]).arg(&image).output().unwrap();
    assert!(fsck.status.code().is_some_and(|c| c <= 1), "e2fsck: {fsck:?}");
    scene.mount = Some(Mount::ext4_image(&image, &scene.state).unwrap());
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    assert_eq!(http::get(daemon.http, "/readyz").await.status, 200);
    acked.check(daemon.http, &scene.state).await;
    assert_eq!(acked.order(daemon.mllp, "RO-2").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(20, 1, 2)).await.status, 0);
    acked.check(daemon.http, &scene.state).await;
    blocking(move || daemon.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_read_only_at_start_stops_the_start_with_the_reason_and_a_start_after_remount_rw_works() {
    let Some(scene) = tmpfs_scene("read-only at start", "0", "32m") else { return };
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    let mut acked = Acked::default();
    assert_eq!(acked.order(daemon.mllp, "ROS-1").await, "AA");
    assert_eq!(acked.store(daemon.dicom, &Instance::ct(21, 1, 1)).await.status, 0);
    blocking(move || daemon.stop()).await;
    scene.mount().remount("ro").unwrap();
    let (started, scene) = blocking(move || (Zenedge::start(&scene.config, None), scene)).await;
    let failure = started.err().expect("a read-only state directory stops the start");
    assert!(failure.contains("exit status: 1"), "{failure}");
    assert!(failure.contains("Read-only file system"), "the reason is named: {failure}");
    scene.mount().remount("rw").unwrap();
    let (mut daemon, scene) = blocking(move || (scene.start(), scene)).await;
    acked.check(daemon.http, &scene.state).await;
    assert_eq!(acked.order(daemon.mllp, "ROS-2").await, "AA");
    blocking(move || daemon.stop()).await;
}
