//! Forwarding under `kill -9`: the real binary is killed while it forwards a backlog of many
//! instances to a real archive (Orthanc), several times, each time just after the archive
//! took in more of them (so a round is in flight, sent in part and not yet recorded). After
//! the restarts every instance is at the archive (which keeps one copy per SOP Instance UID:
//! a re-sent round is a duplicate it drops, never a second instance), none is missing, and
//! the edge recorded exactly one answer per stored instance: its cursor resumed where the
//! last durable round ended, skipping nothing and recording nothing twice. Skipped (with the
//! reason printed) when Orthanc is not installed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::support::dataset::Instance;
use crate::support::orthanc::Orthanc;
use crate::support::process::{RealDaemon, spawn, write_config};
use crate::support::scu::store_all;
use crate::support::{eventually, http};

/// Studies and instances per study of the backlog.
const STUDIES: u32 = 3;
const PER_STUDY: u32 = 20;
/// Kills while the backlog is forwarded.
const KILLS: usize = 3;

async fn start(config: &Path) -> RealDaemon {
    let config = config.to_owned();
    tokio::task::spawn_blocking(move || spawn(&config)).await.unwrap()
}

/// Adds a destination forwarding to `o` in small rounds, so that most kills land mid-round.
fn add_destination(config: &Path, o: &Orthanc) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!(
        "[[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = {}\ncalled_ae = \"{}\"\n\
         confirm = \"store\"\nassociations = 2\nbatch = 4\nretry_base = \"50ms\"\nretry_cap = \"300ms\"\n\
         timeout = \"5s\"\n",
        o.dicom, o.aet,
    ));
    std::fs::write(config, text).unwrap();
}

/// Polls the archive until it holds more than `than` instances (or all of them); the count.
async fn archive_grows(o: &Orthanc, than: usize, all: usize) -> usize {
    eventually("the archive takes in more instances", Duration::from_secs(60), || async {
        let count = o.instance_count().await;
        (count > than || count >= all).then_some(count)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_forward_loses_no_instance_and_records_each_answer_once() {
    let Some(orthanc) = Orthanc::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &dir.path().join("state"));
    let instances: Vec<Instance> =
        (1..=STUDIES).flat_map(|s| (1..=PER_STUDY).map(move |n| Instance::ct(300 + s, 1, n))).collect();
    let all = instances.len();

    // The backlog, stored before any destination exists: forwarding starts at the log's start.
    let mut daemon = start(&config).await;
    store_all(daemon.dicom, instances.clone()).await;
    daemon.kill();
    add_destination(&config, &orthanc);

    let (mut seen, mut mid_forward) = (0, 0);
    for _ in 0..KILLS {
        let mut daemon = start(&config).await;
        archive_grows(&orthanc, seen, all).await;
        daemon.kill();
        seen = orthanc.instance_count().await;
        println!("killed with {seen} of {all} instances at the archive");
        if seen < all {
            mid_forward += 1;
        }
    }
    assert!(mid_forward >= 1, "at least one kill must land while the backlog is forwarded");

    let daemon = start(&config).await;
    eventually("the whole backlog at the archive", Duration::from_secs(120), || async {
        orthanc.instance_count().await == all
    })
    .await;
    for i in &instances {
        assert!(orthanc.instance_id(&i.sop).await.is_some(), "{} is missing at the archive", i.sop);
    }
    let events = eventually("every instance answered", Duration::from_secs(60), || async {
        let events = http::all_events(daemon.http).await;
        let answered = events.iter().filter(|e| e["event_type"] == "InstanceForwarded").count();
        (answered >= all).then_some(events)
    })
    .await;
    let mut answers: HashMap<u64, Vec<&serde_json::Value>> = HashMap::new();
    for f in events.iter().filter(|e| e["event_type"] == "InstanceForwarded") {
        answers.entry(f["data"]["instance_seq"].as_u64().unwrap()).or_default().push(&f["data"]);
    }
    let stored: Vec<_> = events.iter().filter(|e| e["event_type"] == "InstanceStored").collect();
    assert_eq!(stored.len(), all);
    for s in &stored {
        let seq = s["seq"].as_u64().unwrap();
        let got = answers.get(&seq).map_or(&[][..], Vec::as_slice);
        assert_eq!(got.len(), 1, "instance {seq}: one recorded answer, got {got:?}");
        assert_eq!((got[0]["status"].as_str(), got[0]["confirmed"].as_bool()), (Some("stored"), Some(true)));
    }
    let last_stored = stored.iter().filter_map(|s| s["seq"].as_u64()).max().unwrap();
    let ready = http::get(daemon.http, "/readyz").await.json();
    assert!(ready["checks"]["forward"][0]["cursor"].as_u64() >= Some(last_stored), "{ready}");
}
