//! Invariant 1 under a simulated power loss. A `kill -9` keeps the page cache, so it cannot
//! tell a daemon that forgot an fsync from one that did not; these tests can. Real intake
//! (MLLP messages and C-STOREs over several connections) runs against a daemon whose storage
//! operations are journaled ([`Recorder`]); the power is then "lost" just before every fsync
//! of the run, in two variants (unsynced writes lost; unsynced writes there but the last one
//! torn), and each disk image is reopened as the daemon would after the power came back:
//!
//! * every message and instance acknowledged before the loss is in the log;
//! * everything in the log is whole: the HL7 bytes exactly as sent, each `InstanceStored`
//!   names a file that holds exactly the data set sent;
//! * the projections equal a replay of the log; the sequence has no gap;
//! * (double crash) the power lost again at every fsync of the recovery itself changes none
//!   of that, and the recovered daemon kept no instance file that no event names.
//!
//! The enumeration runs with shared flushes (one `syncfs` per batch of instances, the
//! default) and with each instance file and directory fsync'ed on its own. The last tests
//! leave out one kind of flush in the daemon and check that the simulation then finds
//! acknowledged data missing: a simulation that cannot fail proves nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zenedge::events::Event;
use zenedge::log::{FaultInjector, LogOptions};
use zenedge::projections::rebuild;
use zenedge::telemetry::Metrics;

use crate::support::TestDaemon;
use crate::support::daemon::test_config;
use crate::support::dataset::{Instance, dataset};
use crate::support::hl7msg::{ack_code, orm};
use crate::support::powerloss::{CrashImage, Image, Item, Omit, Recorder, crash_images};
use crate::support::scu::{self, CT_IMAGE_STORAGE, EXPLICIT_LE};

const DB: &str = "zenedge.redb";

/// What the clients sent: HL7 payloads by control id, data sets by SOP Instance UID.
#[derive(Debug, Default, Clone)]
struct Sent {
    hl7: HashMap<String, Vec<u8>>,
    instances: HashMap<String, Vec<u8>>,
}

/// The intake of the run: three MLLP senders and two DICOM associations at once. The two
/// associations store into the same series (one directory created under both), and each
/// kind is re-sent once (a duplicate answered from the log, a file found already in place).
async fn workload(d: &TestDaemon, recorder: &Arc<Recorder>, tag: &str) -> Sent {
    let mut sent = Sent::default();
    let mut senders = Vec::new();
    for c in 0..3 {
        let messages: Vec<(String, Vec<u8>)> = (0..8)
            .map(|n| {
                let id = format!("{tag}{c}-{n}");
                let message = orm(&id, &format!("ACC{tag}{c}{n}"));
                (id, message)
            })
            .collect();
        sent.hl7.extend(messages.iter().cloned());
        let (addr, recorder) = (d.mllp, recorder.clone());
        senders.push(tokio::spawn(async move {
            let mut client = crate::support::MllpClient::connect(addr).await;
            for (id, message) in messages.iter().chain(messages.first()) {
                let ack = client.send(message).await;
                assert_eq!(ack_code(&ack), "AA", "{id}");
                recorder.ack(Item::Hl7(id.clone()));
            }
        }));
    }
    let study = 7;
    let batches = [
        (1..=4).map(|n| Instance::ct(study, 1, n)).chain([Instance::ct(study + 1, 1, 1)]).collect::<Vec<_>>(),
        (5..=8).map(|n| Instance::ct(study, 1, n)).chain([Instance::ct(study, 1, 1)]).collect(),
    ];
    let mut associations = Vec::new();
    for batch in batches {
        let items: Vec<(String, Vec<u8>)> = batch.iter().map(|i| (i.sop.clone(), dataset(i, EXPLICIT_LE))).collect();
        sent.instances.extend(items.iter().cloned());
        let (addr, recorder) = (d.dicom, recorder.clone());
        associations.push(tokio::task::spawn_blocking(move || {
            let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
            for (sop, data) in &items {
                let answer = scu.store(CT_IMAGE_STORAGE, sop, data, 4096);
                assert_eq!(answer.status, 0, "{sop}: {answer:?}");
                recorder.ack(Item::Instance(sop.clone()));
            }
            scu.release();
        }));
    }
    for task in senders {
        task.await.expect("MLLP sender");
    }
    for task in associations {
        task.await.expect("SCU");
    }
    sent
}

/// Starts a daemon on `dir` recording into a new [`Recorder`] based on `base`.
async fn recorded(dir: &Arc<tempfile::TempDir>, base: Image, omit: Omit) -> (TestDaemon, Arc<Recorder>) {
    recorded_with(dir, base, omit, SHARED).await
}

/// [`recorded`] with the config `extra`.
async fn recorded_with(
    dir: &Arc<tempfile::TempDir>,
    base: Image,
    omit: Omit,
    extra: &str,
) -> (TestDaemon, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::new(dir.path(), base, omit));
    let faults = FaultInjector::with_hook(recorder.clone());
    let extra = format!("{}{extra}", master_key());
    (TestDaemon::start_with_faults(dir.clone(), &extra, faults).await, recorder)
}

/// The master key, made once outside every state directory, as `provision.sh` makes it before
/// the first start: the simulated disk holds the state directory only (data keys, made in the
/// commit of the first event sealed under them, are part of what it simulates).
fn master_key() -> &'static str {
    static KEY: std::sync::LazyLock<(tempfile::TempDir, String)> = std::sync::LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        zenedge::log::MasterKey::generate().create(&path).unwrap();
        let toml = format!("[store]\nmaster_key_file = {:?}\n", path.display().to_string());
        (dir, toml)
    });
    &KEY.1
}

/// Instances share one flush of the file system per batch (the default).
const SHARED: &str = "";
/// Each instance file and its directory fsync'ed on their own.
const EACH: &str = "[dicom]\nflush = \"each\"\n";

/// Reopens `crash` as the daemon would and lists everything wrong with it (empty: it holds).
async fn check(crash: &CrashImage, sent: &Sent) -> Vec<String> {
    check_counting(crash, sent).await.0
}

/// [`check`], and how many instance files were gone with their deletion recorded (retention
/// removed them: not a loss).
async fn check_counting(crash: &CrashImage, sent: &Sent) -> (Vec<String>, usize) {
    let dir = tempfile::tempdir().unwrap();
    crash.image.materialize(dir.path(), DB);
    let config = test_config(dir.path(), master_key());
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(format!("power lost at {} ({:?}): {p}", crash.at, crash.variant));

    // The projections first, as found: nothing may have rebuilt them yet. (Before the
    // database was created there is none: the daemon makes a new one.)
    let (path, site) = (config.database_path(), config.site.clone());
    let verified = tokio::task::spawn_blocking(move || {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let db = rebuild::open(&path, &site, 16 << 20)?;
        rebuild::verify(&db, &site, |_, _| {}).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|panic| Err(format!("redb panicked: {panic}")));
    match verified {
        Ok(differences) if differences.is_empty() => {}
        Ok(differences) => say(format!("projections differ from a replay: {differences:?}")),
        Err(e) => {
            say(format!("the database does not open: {e}"));
            return (problems, 0);
        }
    }

    let options = LogOptions::from_config(&config);
    let log = match tokio::task::spawn_blocking(move || {
        zenedge::projections::open_log(&options, zenedge::projections::schema(), Arc::new(Metrics::new()), None)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|panic| Err(format!("redb panicked: {panic}")))
    {
        Ok(log) => log,
        Err(e) => {
            say(format!("the log does not open: {e}"));
            return (problems, 0);
        }
    };
    let reader = log.reader();
    let events = tokio::task::spawn_blocking(move || {
        let (mut all, mut after) = (Vec::new(), 0);
        loop {
            let page = zenedge::events::after(&reader, after, 1000).expect("read the log");
            all.extend(page.items);
            match page.next {
                Some(next) => after = next,
                None => return all,
            }
        }
    })
    .await
    .unwrap();
    log.close().await.expect("close the log");

    // A file whose last word in the log is an `InstanceFileDeleted` may be gone (retention
    // unlinks it after that commit); one the log still names as stored may not.
    let mut deleted: HashMap<&str, bool> = HashMap::new();
    for envelope in &events {
        match &envelope.event {
            Event::InstanceStored(s) => deleted.insert(&s.file_path, false),
            Event::InstanceFileDeleted(d) => deleted.insert(&d.file_path, true),
            _ => None,
        };
    }
    let mut unlinked = 0;
    let mut found = BTreeSet::new();
    for (i, envelope) in events.iter().enumerate() {
        if envelope.seq != i as u64 + 1 {
            say(format!("event {} has seq {}", i + 1, envelope.seq));
        }
        match &envelope.event {
            Event::Hl7MessageReceived(m) => {
                if sent.hl7.get(&m.control_id) != Some(&m.raw) {
                    say(format!("HL7 {} is not what was sent", m.control_id));
                }
                found.insert(Item::Hl7(m.control_id.clone()));
            }
            Event::InstanceStored(s) => {
                let Some(data) = sent.instances.get(&s.sop_instance_uid) else {
                    say(format!("instance {} was never sent", s.sop_instance_uid));
                    continue;
                };
                match std::fs::read(dir.path().join(&s.file_path)) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && deleted[s.file_path.as_str()] => {
                        unlinked += 1
                    }
                    Err(e) => say(format!("seq {}: {} is missing: {e}", envelope.seq, s.file_path)),
                    Ok(file) => {
                        let whole = file.len() as u64 == s.size
                            && file.ends_with(data)
                            && zenedge::ids::hex(&Sha256::digest(data)) == s.sha256;
                        if !whole {
                            say(format!(
                                "seq {}: {} holds {} bytes, not the {} bytes stored",
                                envelope.seq,
                                s.file_path,
                                file.len(),
                                s.size
                            ));
                        }
                    }
                }
                found.insert(Item::Instance(s.sop_instance_uid.clone()));
            }
            _ => {}
        }
    }
    for lost in crash.acked.difference(&found) {
        say(format!("acknowledged but lost: {lost:?}"));
    }
    (problems, unlinked)
}

/// Checks every crash image; returns the problems and how many acknowledged items were
/// checked in all.
async fn check_all(crashes: &[CrashImage], sent: &Sent) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut checked = 0;
    for crash in crashes {
        checked += crash.acked.len();
        problems.extend(check(crash, sent).await);
    }
    (problems, checked)
}

/// Power losses at every fsync of a run with `extra`; returns the problems.
async fn power_losses_at_every_fsync(extra: &str) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (d, recorder) = recorded_with(&dir, Image::default(), Omit::default(), extra).await;
    let sent = workload(&d, &recorder, "A").await;
    d.stop().await.unwrap();
    let crashes = crash_images(&recorder, 1);
    let (problems, checked) = check_all(&crashes, &sent).await;
    eprintln!(
        "{} fsyncs, {} power losses simulated, {checked} acknowledged items checked, {} problems",
        recorder.syncs(),
        crashes.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    let last = crashes.last().unwrap();
    assert_eq!(last.acked.len(), sent.hl7.len() + sent.instances.len(), "every item was acknowledged by the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_power_loss_at_any_fsync_keeps_every_acknowledged_message_and_instance() {
    power_losses_at_every_fsync(SHARED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_power_loss_at_any_fsync_keeps_everything_acknowledged_with_each_instance_flushed_on_its_own() {
    power_losses_at_every_fsync(EACH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_power_loss_during_recovery_from_a_power_loss_keeps_everything_acknowledged() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (d, recorder) = recorded(&dir, Image::default(), Omit::default()).await;
    let sent = workload(&d, &recorder, "B").await;
    d.stop().await.unwrap();
    let firsts = crash_images(&recorder, 15);
    let (mut seconds, mut checked, mut problems) = (0, 0, Vec::new());
    for first in &firsts {
        // Recovery: the daemon starts on the image (repairs the database, sweeps the spool),
        // takes one more message and stops; the power goes at each of its fsyncs.
        let again = Arc::new(tempfile::tempdir().unwrap());
        first.image.materialize(again.path(), DB);
        let (d, recovery) = recorded(&again, first.image.clone(), Omit::default()).await;
        let id = format!("R{}-{:?}", first.at, first.variant);
        let message = orm(&id, "ACC-R");
        let ack = d.client().await.send(&message).await;
        assert_eq!(ack_code(&ack), "AA");
        recovery.ack(Item::Hl7(id.clone()));
        let unnamed = unnamed_instance_files(&d).await;
        assert!(unnamed.is_empty(), "after {}: files no event names survived the start: {unnamed:?}", first.at);
        d.stop().await.unwrap();
        let mut sent = sent.clone();
        sent.hl7.insert(id, message);
        for mut second in crash_images(&recovery, 1) {
            second.acked.extend(first.acked.iter().cloned());
            checked += second.acked.len();
            seconds += 1;
            problems.extend(check(&second, &sent).await.into_iter().map(|p| format!("after {}: {p}", first.at)));
        }
    }
    eprintln!(
        "{} first power losses, {seconds} second ones during recovery, {checked} acknowledged items checked, {} problems",
        firsts.len(),
        problems.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The instance files under `d`'s state directory that no event names.
async fn unnamed_instance_files(d: &TestDaemon) -> Vec<std::path::PathBuf> {
    let named: BTreeSet<_> =
        d.events().await.iter().filter_map(|e| e["data"]["file_path"].as_str().map(|p| d.dir.path().join(p))).collect();
    let mut unnamed = Vec::new();
    let mut dirs = vec![d.dir.path().join("instances")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with(".spool") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") && !named.contains(&path) {
                unnamed.push(path);
            }
        }
    }
    unnamed
}

/// Stores `instance` in a scratch daemon and returns its file: path relative to the state
/// directory, and bytes.
async fn part10_file(instance: &Instance, data: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let d = TestDaemon::start().await;
    let (addr, sop, data) = (d.dicom, instance.sop.clone(), data.to_vec());
    let answer = tokio::task::spawn_blocking(move || {
        scu::connect_ct(addr, EXPLICIT_LE).store(CT_IMAGE_STORAGE, &sop, &data, 4096)
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 0);
    let events = d.events().await;
    let path = std::path::PathBuf::from(events[0]["data"]["file_path"].as_str().expect("file_path"));
    let bytes = std::fs::read(d.dir.path().join(&path)).unwrap();
    d.stop().await.unwrap();
    (path, bytes)
}

/// A killed daemon leaves `leftover` (directories, or the instance's file already in place)
/// with names not yet durable; the restarted daemon stores the instance into it. A power
/// loss after the `Success` must not take the file with it.
async fn store_over_a_leftover(file_too: bool) -> Vec<String> {
    let instance = Instance::ct(31, 2, 1);
    let data = dataset(&instance, EXPLICIT_LE);
    let (path, bytes) = part10_file(&instance, &data).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (d, recorder) = recorded(&dir, Image::default(), Omit::default()).await;
    // The daemon is up (its spool prepared) once it answers an echo.
    let addr = d.dicom;
    assert_eq!(tokio::task::spawn_blocking(move || scu::connect_ct(addr, EXPLICIT_LE).echo()).await.unwrap().status, 0);
    if file_too {
        recorder.leftover(&path, Some(&bytes));
    } else {
        recorder.leftover(path.parent().unwrap(), None);
    }
    let (sop, sent) = (instance.sop.clone(), data.clone());
    let answer = tokio::task::spawn_blocking(move || {
        scu::connect_ct(addr, EXPLICIT_LE).store(CT_IMAGE_STORAGE, &sop, &sent, 4096)
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 0);
    recorder.ack(Item::Instance(instance.sop.clone()));
    d.stop().await.unwrap();
    let sent = Sent { instances: HashMap::from([(instance.sop.clone(), data)]), ..Sent::default() };
    check_all(&crash_images(&recorder, 1), &sent).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directories_left_by_a_killed_daemon_are_made_durable_before_an_instance_moves_in() {
    let problems = store_over_a_leftover(false).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_file_found_in_place_is_made_durable_before_success() {
    let problems = store_over_a_leftover(true).await;
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Runs the workload with `omit` and the config `extra`, and returns the simulation's
/// findings.
async fn findings_without(omit: Omit, extra: &str) -> Vec<String> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (d, recorder) = recorded_with(&dir, Image::default(), omit, extra).await;
    let sent = workload(&d, &recorder, "X").await;
    d.stop().await.unwrap();
    let crashes = crash_images(&recorder, 1);
    let (problems, _) = check_all(&crashes, &sent).await;
    eprintln!("{omit:?}: {} power losses simulated, {} problems found", crashes.len(), problems.len());
    problems
}

fn any(problems: &[String], what: &str) -> bool {
    problems.iter().any(|p| p.contains(what))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_log_fsync_the_simulation_finds_acknowledged_data_lost() {
    let problems = findings_without(Omit { db_sync: true, ..Omit::default() }, SHARED).await;
    assert!(any(&problems, "acknowledged but lost: Hl7"), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_instance_file_fsync_the_simulation_finds_short_files() {
    let problems = findings_without(Omit { file_sync: true, ..Omit::default() }, EACH).await;
    assert!(any(&problems, "not the"), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_directory_fsync_the_simulation_finds_missing_files() {
    let problems = findings_without(Omit { dir_sync: true, ..Omit::default() }, EACH).await;
    assert!(any(&problems, "is missing"), "{problems:#?}");
}

/// Retention's step between confirmation and unlink: instances stored, forwarded to the
/// archive (Orthanc) and confirmed there, then deleted by retention (the unlink and its
/// directory fsync announced like every other storage operation); a power loss at every fsync
/// of that run leaves each file either in place and whole, or gone with its deletion recorded
/// in the log: never gone while the log still counts on it. Skipped without Orthanc.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_power_loss_between_confirmation_and_unlink_never_loses_a_file_the_log_counts_on() {
    let Some(orthanc) = crate::support::orthanc::Orthanc::start().await else { return };
    let extra = format!(
        "[[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = {}\ncalled_ae = \"{}\"\n\
         confirm = \"store\"\ntimeout = \"5s\"\n[retention]\ndicom_max_age = \"1s\"\ninterval = \"100ms\"\n",
        orthanc.dicom, orthanc.aet,
    );
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (d, recorder) = recorded_with(&dir, Image::default(), Omit::default(), &extra).await;
    let items: Vec<(String, Vec<u8>)> =
        (1..=4).map(|n| Instance::ct(51, 1, n)).map(|i| (i.sop.clone(), dataset(&i, EXPLICIT_LE))).collect();
    let sent = Sent { instances: items.iter().cloned().collect(), ..Sent::default() };
    let (addr, acks) = (d.dicom, recorder.clone());
    tokio::task::spawn_blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        for (sop, data) in &items {
            assert_eq!(scu.store(CT_IMAGE_STORAGE, sop, data, 4096).status, 0, "{sop}");
            acks.ack(Item::Instance(sop.clone()));
        }
        scu.release();
    })
    .await
    .unwrap();
    crate::support::eventually("every file confirmed and deleted", std::time::Duration::from_secs(60), || async {
        d.events().await.iter().filter(|e| e["event_type"] == "InstanceFileDeleted").count() == sent.instances.len()
    })
    .await;
    d.stop().await.unwrap();
    let crashes = crash_images(&recorder, 1);
    let (mut problems, mut unlinked) = (Vec::new(), 0);
    for crash in &crashes {
        let (found, gone) = check_counting(crash, &sent).await;
        problems.extend(found);
        unlinked += gone;
    }
    eprintln!("{} power losses simulated, {unlinked} files found unlinked after their deletion", crashes.len());
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(unlinked > 0, "the simulation must reach the unlinks: they go through the storage hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_shared_flush_of_the_file_system_the_simulation_finds_files_short_or_missing() {
    let problems = findings_without(Omit { fs_sync: true, ..Omit::default() }, SHARED).await;
    assert!(any(&problems, "not the") && any(&problems, "is missing"), "{problems:#?}");
}
