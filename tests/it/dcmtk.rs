//! Interop with an independent DICOM implementation, DCMTK: `echoscu`, `storescu` and
//! `dcmsend` talk to the daemon, and what was stored compares equal to what was sent; and
//! `kill -9` of the real binary while `storescu` sends loses no instance that got `Success`.
//!
//! DCMTK comes from the `dcmtk` Debian package (`.ci/run` installs it); without it these
//! tests print why they are skipped and pass.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::TestDaemon;
use crate::support::dataset::{Instance, dataset_bytes, read_dataset, write_file};
use crate::support::process::{spawn, write_config};
use crate::support::scu::{DX_FOR_PRESENTATION, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, JPEG_BASELINE};

/// The DCMTK tool, or `None` (with the reason printed) when DCMTK is not installed.
pub(crate) fn dcmtk(tool: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("skipping: DCMTK's {tool} is not installed (Debian package dcmtk; .ci/run installs it)");
    }
    found
}

pub(crate) async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run DCMTK")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmtk_echoscu_and_storescu_are_served_and_the_stored_datasets_equal_the_sent_ones() {
    let (Some(echoscu), Some(storescu), Some(dcmsend)) = (dcmtk("echoscu"), dcmtk("storescu"), dcmtk("dcmsend")) else {
        return;
    };
    let d = TestDaemon::start().await;
    let port = d.dicom.port().to_string();
    let mut echo = Command::new(echoscu);
    echo.args(["-aet", "CT01", "-aec", "ZENEDGE", "127.0.0.1", &port]);
    let out = run(echo).await;
    assert!(out.status.success(), "echoscu: {}", String::from_utf8_lossy(&out.stderr));

    let files = tempfile::tempdir().unwrap();
    let uncompressed: Vec<PathBuf> = [IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE]
        .iter()
        .enumerate()
        .map(|(n, ts)| write_file(files.path(), &Instance::ct(40, 1, n as u32 + 1), ts))
        .collect();
    let mut store = Command::new(storescu);
    store.args(["-aet", "CT01", "-aec", "ZENEDGE", "127.0.0.1", &port]).args(&uncompressed);
    let out = run(store).await;
    assert!(out.status.success(), "storescu: {}", String::from_utf8_lossy(&out.stderr));
    // Compressed data goes through dcmsend, which proposes the file's own transfer syntax.
    let jpeg = write_file(files.path(), &Instance::ct(40, 2, 1), JPEG_BASELINE);
    let mut send = Command::new(dcmsend);
    send.args(["-aet", "CT01", "-aec", "ZENEDGE", "127.0.0.1", &port]).arg(&jpeg);
    let out = run(send).await;
    assert!(out.status.success(), "dcmsend: {}", String::from_utf8_lossy(&out.stderr));

    let stored: HashMap<String, String> = d
        .events()
        .await
        .iter()
        .filter(|e| e["event_type"] == "InstanceStored")
        .map(|e| {
            (
                e["data"]["sop_instance_uid"].as_str().unwrap().to_owned(),
                e["data"]["file_path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(stored.len(), 4);
    for sent in uncompressed.iter().chain([&jpeg]) {
        let sop = sent.file_stem().unwrap().to_str().unwrap();
        let path = d.dir.path().join(&stored[sop]);
        let (stored_ts, stored_bytes) = dataset_bytes(&path);
        let (sent_ts, sent_bytes) = dataset_bytes(sent);
        if stored_ts == sent_ts {
            assert!(stored_bytes == sent_bytes, "{sop}: stored data set bytes differ from the file sent ({sent_ts})");
        } else {
            assert_eq!(read_dataset(&path), read_dataset(sent), "{sop}: stored data set differs from the sent one");
        }
    }
    d.stop().await.unwrap();
}

/// What an X-ray room sends: DCMTK's `storescu` proposes Digital X-Ray Image Storage - For
/// Presentation (a storage class whose name does not end in "Storage") and its file is
/// stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmtk_storescu_sends_a_digital_x_ray_for_presentation_file_and_it_is_stored() {
    let Some(storescu) = dcmtk("storescu") else { return };
    let d = TestDaemon::start().await;
    let files = tempfile::tempdir().unwrap();
    let dx = write_file(files.path(), &Instance::dx(41, 1, 1), EXPLICIT_LE);
    let mut store = Command::new(storescu);
    store.args(["-aet", "DX01", "-aec", "ZENEDGE", "127.0.0.1", &d.dicom.port().to_string()]).arg(&dx);
    let out = run(store).await;
    assert!(out.status.success(), "storescu: {}", String::from_utf8_lossy(&out.stderr));
    let events = d.events().await;
    let stored = events.iter().find(|e| e["event_type"] == "InstanceStored").expect("an InstanceStored");
    assert_eq!(stored["data"]["sop_class_uid"], DX_FOR_PRESENTATION);
    assert_eq!(stored["data"]["calling_ae"], "DX01");
    let path = d.dir.path().join(stored["data"]["file_path"].as_str().unwrap());
    assert!(dataset_bytes(&path).1 == dataset_bytes(&dx).1, "the stored data set is the one sent");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_storescu_sends_loses_no_instance_that_got_success() {
    let Some(storescu) = dcmtk("storescu") else { return };
    let cycles: usize = std::env::var("DICOM_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    println!("DICOM crash test: {cycles} cycles, CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("zenedge.toml");
    write_config(&config, &state);
    let files_dir = dir.path().join("files");
    std::fs::create_dir(&files_dir).unwrap();
    let mut acked: HashMap<String, PathBuf> = HashMap::new();
    for cycle in 0..cycles {
        let files: Vec<PathBuf> =
            (0..40).map(|n| write_file(&files_dir, &Instance::ct(100 + cycle as u32, 1, n + 1), EXPLICIT_LE)).collect();
        let config = config.clone();
        let mut daemon = tokio::task::spawn_blocking(move || spawn(&config)).await.unwrap();
        let dicom = daemon.dicom;
        let mut sender = Command::new(&storescu)
            .args(["-v", "-aet", "CT01", "-aec", "ZENEDGE", "127.0.0.1", &dicom.port().to_string()])
            .args(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let kill_after = rng.usize(1..30);
        let log = sender.stderr.take().unwrap();
        let successes = tokio::task::spawn_blocking(move || {
            // storescu -v logs (on stderr) "Sending file: F", then "Received Store Response (Success)".
            let (mut current, mut ok, mut lines) = (None::<PathBuf>, Vec::new(), BufReader::new(log).lines());
            while let Some(Ok(line)) = lines.next() {
                if let Some(file) = line.split("Sending file: ").nth(1) {
                    current = Some(PathBuf::from(file.trim()));
                } else if line.contains("Received Store Response (Success)") {
                    ok.extend(current.take());
                    if ok.len() == kill_after {
                        daemon.kill();
                    }
                }
            }
            if ok.len() < kill_after {
                daemon.kill();
            }
            ok
        })
        .await
        .unwrap();
        sender.wait().unwrap();
        for f in successes {
            let sop = f.file_stem().unwrap().to_str().unwrap().to_owned();
            acked.insert(sop, f);
        }
        println!("cycle {cycle}: {} instances acknowledged so far", acked.len());
    }
    let config2 = config.clone();
    let mut daemon = tokio::task::spawn_blocking(move || spawn(&config2)).await.unwrap();
    let http = daemon.http;
    let mut stored: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for e in crate::support::http::all_events(http).await {
        if e["event_type"] == "InstanceStored" {
            stored
                .entry(e["data"]["sop_instance_uid"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["data"].clone());
        }
    }
    daemon.kill();
    assert!(acked.len() >= cycles, "every cycle acknowledged something");
    for (sop, sent) in &acked {
        let events = stored.get(sop).unwrap_or_else(|| panic!("{sop} got Success but is not in the log"));
        assert_eq!(events.len(), 1, "{sop} recorded more than once");
        let e = &events[0];
        let (_, on_disk) = dataset_bytes(&state.join(e["file_path"].as_str().unwrap()));
        assert_eq!(
            e["sha256"].as_str().unwrap(),
            sha2_hex(&on_disk),
            "{sop}: file on disk differs from the recorded sha256"
        );
        assert!(on_disk == dataset_bytes(sent).1, "{sop}: data set differs from the one sent");
    }
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
