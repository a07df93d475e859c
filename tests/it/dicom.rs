//! Invariant 1 for DICOM: `Success` means the instance is a durable Part 10 file in place and
//! its `InstanceStored` is committed; anything else gets a failure status and leaves nothing
//! the log refers to.

use std::path::Path;

use dicom_object::OpenFileOptions;

use crate::support::dataset::{Instance, dataset, dataset_without_pixels};
use crate::support::scu::{
    self, CT_IMAGE_STORAGE, DEFLATED, DX_FOR_PRESENTATION, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, JPEG_BASELINE,
    VERIFICATION, store_all,
};
use crate::support::{TestDaemon, eventually};

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("SCU thread")
}

/// Stored instance files (the spool of files being received or prepared is not storage).
fn instance_files(state: &Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == ".spool") {
                    continue;
                }
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&state.join("instances"), &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_echo_answers_success_with_the_request_class_and_message_id() {
    let d = TestDaemon::start().await;
    let addr = d.dicom;
    let answer = blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let a = scu.echo();
        scu.release();
        a
    })
    .await;
    assert_eq!((answer.status, answer.message_id, answer.sop_class_uid.as_str()), (0, 2, VERIFICATION));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_in_every_transfer_syntax_are_stored_as_received_before_success() {
    let d = TestDaemon::start().await;
    for (n, ts) in [IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED, JPEG_BASELINE].into_iter().enumerate() {
        let i = Instance::ct(1, 1, n as u32 + 1);
        let data = dataset(&i, ts);
        let (addr, sop, sent) = (d.dicom, i.sop.clone(), data.clone());
        let answer = blocking(move || {
            let mut scu = scu::connect_ct(addr, ts);
            assert_eq!(scu.accepted_ts(CT_IMAGE_STORAGE), ts);
            let a = scu.store(CT_IMAGE_STORAGE, &sop, &sent, 16_000);
            scu.release();
            a
        })
        .await;
        assert_eq!(answer.status, 0, "{ts}: {:?}", answer.comment);
        let event = d.events().await.into_iter().last().unwrap();
        assert_eq!(event["event_type"], "InstanceStored", "{ts}");
        let e = &event["data"];
        assert_eq!(e["sop_instance_uid"], i.sop.as_str());
        assert_eq!(e["transfer_syntax_uid"], ts);
        assert_eq!(e["patient_id"], "PAT-1");
        assert_eq!(e["accession_number"], "ACC-1");
        assert_eq!(e["calling_ae"], "CT01");
        let path = d.dir.path().join(e["file_path"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(e["size"], bytes.len() as u64);
        assert!(bytes.ends_with(&data), "{ts}: the data set is stored byte for byte");
        let file =
            OpenFileOptions::new().read_until(dicom_dictionary_std::tags::PATIENT_NAME).open_file(&path).unwrap();
        assert_eq!(file.meta().transfer_syntax(), ts);
        assert_eq!(file.meta().media_storage_sop_instance_uid(), i.sop);
        assert_eq!(file.meta().media_storage_sop_class_uid(), CT_IMAGE_STORAGE);
        assert_eq!(file.meta().source_application_entity_title(), Some("CT01"));
    }
    d.stop().await.unwrap();
}

/// Storage classes are known by what they are, not by a name ending in "Storage": a Digital
/// X-Ray "For Presentation" instance is stored. Contexts of other services and of unknown
/// SOP classes are refused, and counted by reason and SOP class keyword (never by a UID from
/// the wire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digital_x_ray_instance_is_stored_and_refused_contexts_are_counted_by_reason() {
    let d = TestDaemon::start().await;
    let i = Instance::dx(5, 1, 1);
    let (addr, sent) = (d.dicom, i.clone());
    let answer = blocking(move || {
        let find = "1.2.840.10008.5.1.4.1.2.2.1";
        let private = "1.2.826.0.1.3680043.10.999.77";
        let contexts: &[(&str, &[&str])] =
            &[(DX_FOR_PRESENTATION, &[EXPLICIT_LE]), (find, &[EXPLICIT_LE]), (private, &[EXPLICIT_LE])];
        let mut scu = scu::connect(addr, "DX01", "ZENEDGE", contexts, 16_384).expect("association");
        let a = scu.store(DX_FOR_PRESENTATION, &sent.sop, &dataset(&sent, EXPLICIT_LE), 16_000);
        scu.release();
        a
    })
    .await;
    assert_eq!(answer.status, 0, "{:?}", answer.comment);
    let events = d.events().await;
    assert_eq!(events[0]["data"]["sop_class_uid"], DX_FOR_PRESENTATION);
    assert_eq!(events[0]["data"]["modality"], "DX");
    let metrics = d.get("/metrics").await.body;
    for line in [
        "zenedge_dicom_contexts_refused_total{reason=\"not_storage\",sop_class=\"StudyRootQueryRetrieveInformationModelFind\"} 1",
        "zenedge_dicom_contexts_refused_total{reason=\"unknown_sop_class\",sop_class=\"unknown\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_split_across_many_small_pdus_is_reassembled() {
    let d = TestDaemon::start_with("[dicom]\nmax_pdu_length = \"4KiB\"\n").await;
    let mut i = Instance::ct(2, 1, 1);
    i.pixel_bytes = 200_000;
    let data = dataset(&i, EXPLICIT_LE);
    let (addr, sop, sent) = (d.dicom, i.sop.clone(), data.clone());
    let answer = blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let a = scu.store(CT_IMAGE_STORAGE, &sop, &sent, 1_000);
        scu.release();
        a
    })
    .await;
    assert_eq!(answer.status, 0, "{:?}", answer.comment);
    let e = &d.events().await[0]["data"];
    let bytes = std::fs::read(d.dir.path().join(e["file_path"].as_str().unwrap())).unwrap();
    assert!(bytes.ends_with(&data));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_instance_again_is_success_without_a_new_event_and_other_bytes_replace() {
    let d = TestDaemon::start().await;
    let i = Instance::ct(3, 1, 1);
    let mut changed = i.clone();
    changed.pixel_bytes = 1024;
    let (addr, a, b) = (d.dicom, i.clone(), changed.clone());
    let answers = blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let first = scu.store(CT_IMAGE_STORAGE, &a.sop, &dataset(&a, EXPLICIT_LE), 16_000);
        let again = scu.store(CT_IMAGE_STORAGE, &a.sop, &dataset(&a, EXPLICIT_LE), 16_000);
        let other = scu.store(CT_IMAGE_STORAGE, &b.sop, &dataset(&b, EXPLICIT_LE), 16_000);
        scu.release();
        [first.status, again.status, other.status]
    })
    .await;
    assert_eq!(answers, [0, 0, 0]);
    let events = d.events().await;
    assert_eq!(events.len(), 2, "the identical re-send appended nothing");
    assert_eq!(events[1]["data"]["replaces_seq"], 1);
    assert_eq!(
        instance_files(d.dir.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "dcm")).count(),
        2,
        "both versions kept"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calling_ae_not_on_the_allow_list_and_a_wrong_called_ae_are_rejected() {
    let d = TestDaemon::start_with("[dicom]\ncalling_ae_allow = [\"CT01@127.0.0.1\"]\n").await;
    let addr = d.dicom;
    let (stranger, wrong_called, allowed) = blocking(move || {
        let contexts: &[(&str, &[&str])] = &[(VERIFICATION, &[IMPLICIT_LE])];
        let stranger = scu::connect(addr, "MR99", "ZENEDGE", contexts, 16_384).err().map(|e| e.to_string());
        let wrong = scu::connect(addr, "CT01", "NOT-US", contexts, 16_384).err().map(|e| e.to_string());
        let allowed = scu::connect(addr, "CT01", "ZENEDGE", contexts, 16_384).map(|s| s.release()).is_ok();
        (stranger, wrong, allowed)
    })
    .await;
    let stranger = stranger.expect("refused");
    assert!(stranger.to_lowercase().contains("calling"), "{stranger}");
    let wrong_called = wrong_called.expect("refused");
    assert!(wrong_called.to_lowercase().contains("called"), "{wrong_called}");
    assert!(allowed);
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_dicom_associations_total{reason=\"rejected_calling_ae\"} 1"), "{metrics}");
    assert!(metrics.contains("zenedge_dicom_associations_total{reason=\"rejected_called_ae\"} 1"), "{metrics}");
    d.stop().await.unwrap();
}

/// A modality set up for DICOM over TLS but pointed at the plain port is told at once (the
/// connection closes) and shows up in the metrics and the log as such, not as a broken PDU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_hello_on_the_plain_dicom_port_is_closed_at_once_and_counted_as_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = TestDaemon::start().await;
    let mut stream = tokio::net::TcpStream::connect(d.dicom).await.unwrap();
    // The start of a TLS 1.2 ClientHello record.
    stream.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await.unwrap();
    let limit = std::time::Duration::from_secs(20);
    let read = tokio::time::timeout(limit, stream.read(&mut [0u8; 64])).await.expect("closed by the daemon");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without a PDU: {read:?}");
    let metrics = d.get("/metrics").await.body;
    assert!(metrics.contains("zenedge_dicom_associations_total{reason=\"tls_on_plain_port\"} 1"), "{metrics}");
    let contexts: &[(&str, &[&str])] = &[(VERIFICATION, &[IMPLICIT_LE])];
    let addr = d.dicom;
    let associated =
        blocking(move || scu::connect(addr, "CT01", "ZENEDGE", contexts, 16_384).map(|s| s.release()).is_ok());
    assert!(associated.await, "the port still serves DICOM");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_in_the_middle_of_an_instance_leaves_no_event_and_no_file() {
    let d = TestDaemon::start_with("[dicom]\nmax_pdu_length = \"4KiB\"\n").await;
    let mut i = Instance::ct(4, 1, 1);
    i.pixel_bytes = 3_000_000;
    let data = dataset(&i, EXPLICIT_LE);
    let (addr, sop) = (d.dicom, i.sop.clone());
    blocking(move || {
        let scu = scu::connect_ct(addr, EXPLICIT_LE);
        scu.store_then_abort(CT_IMAGE_STORAGE, &sop, &data[..2_000]);
    })
    .await;
    // A later association on the same daemon is served; by then the aborted one is gone.
    let (addr, next) = (d.dicom, Instance::ct(4, 1, 2));
    let answer = blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let a = scu.store(CT_IMAGE_STORAGE, &next.sop, &dataset(&next, EXPLICIT_LE), 16_000);
        scu.release();
        a
    })
    .await;
    assert_eq!(answer.status, 0);
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    let files = instance_files(dir.path());
    assert_eq!(files.len(), 1, "only the completed instance is on disk: {files:?}");
    let partial: Vec<_> = std::fs::read_dir(dir.path().join("instances/.spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.metadata().unwrap().len() > 0)
        .collect();
    assert!(partial.is_empty(), "the aborted instance's spool file was removed: {partial:?}");
    let d = TestDaemon::start_in(dir, "").await;
    let events = d.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["sop_instance_uid"], Instance::ct(4, 1, 2).sop.as_str());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_disk_reserve_c_store_is_refused_out_of_resources() {
    let d = TestDaemon::start_with("[store]\ndisk_reserve = \"100%\"\n").await;
    let (addr, i) = (d.dicom, Instance::ct(5, 1, 1));
    let answer = blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let a = scu.store(CT_IMAGE_STORAGE, &i.sop, &dataset(&i, EXPLICIT_LE), 16_000);
        scu.release();
        a
    })
    .await;
    assert_eq!(answer.status, 0xA700);
    assert!(answer.comment.unwrap_or_default().contains("disk reserve"));
    assert_eq!(d.get("/api/v1/status").await.json()["last_seq"], 0, "nothing stored");
    assert!(instance_files(d.dir.path()).is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_set_of_another_sop_class_or_unreadable_bytes_gets_a900_or_c000() {
    let d = TestDaemon::start().await;
    let (addr, i) = (d.dicom, Instance::ct(6, 1, 1));
    let (mismatch, garbage) = blocking(move || {
        let mut scu = scu::connect(
            addr,
            "CT01",
            "ZENEDGE",
            &[(CT_IMAGE_STORAGE, &[EXPLICIT_LE]), ("1.2.840.10008.5.1.4.1.1.4", &[EXPLICIT_LE])],
            16_384,
        )
        .unwrap();
        // A CT data set sent as MR Image Storage.
        let mismatch = scu.store("1.2.840.10008.5.1.4.1.1.4", &i.sop, &dataset(&i, EXPLICIT_LE), 16_000);
        let garbage =
            scu.store(CT_IMAGE_STORAGE, "1.2.3.4", &[0x08, 0x00, 0x16, 0x00, b'U', b'I', 0xFF, 0x7F, 1, 2], 16_000);
        scu.release();
        (mismatch, garbage)
    })
    .await;
    assert_eq!(mismatch.status, 0xA900, "{:?}", mismatch.comment);
    assert_eq!(garbage.status & 0xF000, 0xC000, "{:?}", garbage.comment);
    assert!(garbage.comment.is_some());
    assert!(d.events().await.is_empty());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_completes_once_its_instances_stop_and_again_after_a_late_one() {
    let d = TestDaemon::start_with("[dicom]\nstable_after = \"300ms\"\n").await;
    let addr = d.dicom;
    store_all(addr, [(1, 1), (1, 2), (2, 1)].map(|(series, n)| Instance::ct(7, series, n)).into()).await;
    let completed = wait_for_completion(&d, 1).await;
    assert_eq!(completed["series_count"], 2);
    assert_eq!(completed["instance_count"], 3);
    assert_eq!(completed["accession_number"], "ACC-7");
    assert_eq!(completed["modality"], "CT");
    let study = d.get(&format!("/api/v1/studies/{}", Instance::ct(7, 1, 1).study)).await.json();
    assert_eq!(study["revision"], 1);
    assert_eq!(study["pending"], false);
    assert_eq!(study["series"].as_array().unwrap().len(), 2);
    store_all(addr, vec![Instance::ct(7, 2, 2)]).await;
    let again = wait_for_completion(&d, 2).await;
    assert_eq!(again["instance_count"], 4);
    d.stop().await.unwrap();
}

/// Waits until `StudyCompleted` revision `revision` is in the log (fails after 30 s).
async fn wait_for_completion(d: &TestDaemon, revision: u64) -> serde_json::Value {
    eventually(&format!("StudyCompleted revision {revision}"), std::time::Duration::from_secs(30), || async {
        let events = d.events().await;
        let found =
            events.into_iter().find(|e| e["event_type"] == "StudyCompleted" && e["data"]["revision"] == revision);
        found.map(|e| e["data"].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn studies_api_answers_404_for_an_unknown_study_and_400_for_a_bad_uid() {
    let d = TestDaemon::start().await;
    assert_eq!(d.get("/api/v1/studies/1.2.3").await.status, 404);
    assert_eq!(d.get("/api/v1/studies/..%2F..%2Fetc").await.status, 400);
    let _ = dataset_without_pixels(&Instance::ct(1, 1, 1), EXPLICIT_LE);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_instance_is_stored_without_holding_it_in_memory() {
    const SIZE: usize = 256 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    crate::support::process::write_config(&config, &dir.path().join("state"));
    let mut daemon = blocking(move || crate::support::process::spawn(&config)).await;
    let before = daemon.peak_rss_kib();
    let mut i = Instance::ct(8, 1, 1);
    i.pixel_bytes = 0;
    let head = dataset_without_pixels(&i, EXPLICIT_LE);
    let addr = daemon.dicom;
    let answer = blocking(move || {
        let mut scu = scu::connect(addr, "CT01", "ZENEDGE", &[(CT_IMAGE_STORAGE, &[EXPLICIT_LE])], 131_072).unwrap();
        // The data set: its attributes, then Pixel Data (OB) of the remaining bytes, streamed.
        let pixels = (SIZE - head.len() - 12) as u32;
        let mut start = head.clone();
        start.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
        start.extend_from_slice(&pixels.to_le_bytes());
        let a = scu.store_streamed(CT_IMAGE_STORAGE, &i.sop, &start, SIZE, 65_536);
        scu.release();
        a
    })
    .await;
    assert_eq!(answer.status, 0, "{:?}", answer.comment);
    let peak_mib = daemon.peak_rss_kib() / 1024;
    let page = crate::support::http::get(daemon.http, "/api/v1/events?after=0").await.json();
    daemon.kill();
    let e = &page["items"][0]["data"];
    assert!(e["size"].as_u64().unwrap() > SIZE as u64, "{e}");
    println!("peak RSS {peak_mib} MiB after a {} MiB instance (before: {} MiB)", SIZE >> 20, before / 1024);
    assert!(peak_mib < 128, "peak RSS {peak_mib} MiB while receiving a {} MiB instance", SIZE >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partly_received_files_left_by_a_crash_are_swept_at_start_up() {
    let d = TestDaemon::start().await;
    let dir = d.dir.clone();
    d.stop().await.unwrap();
    let orphan = dir.path().join("instances/.spool/0d7d6d3c.part");
    std::fs::write(&orphan, b"half an instance").unwrap();
    let d = TestDaemon::start_in(dir, "").await;
    // The daemon answers only after start-up, which sweeps first.
    assert_eq!(d.get("/healthz").await.status, 200);
    assert!(!orphan.exists());
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_names_are_decoded_per_specific_character_set() {
    let d = TestDaemon::start().await;
    let mut latin1 = Instance::ct(9, 1, 1);
    latin1.charset = Some("ISO_IR 100".into());
    latin1.patient_name = "Müller^Jürgen".into();
    let mut utf8 = Instance::ct(9, 1, 2);
    utf8.charset = Some("ISO_IR 192".into());
    utf8.patient_name = "Øster^Åsa".into();
    let addr = d.dicom;
    let (a, b) = (latin1.clone(), utf8.clone());
    blocking(move || {
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        for i in [a, b] {
            let data = dataset(&i, EXPLICIT_LE);
            assert_eq!(scu.store(CT_IMAGE_STORAGE, &i.sop, &data, 16_000).status, 0);
        }
        scu.release();
    })
    .await;
    let events = d.events().await;
    assert_eq!(events[0]["data"]["patient_name"], "Müller^Jürgen");
    assert_eq!(events[0]["data"]["charset_fallback"], false);
    assert_eq!(events[1]["data"]["patient_name"], "Øster^Åsa");
    d.stop().await.unwrap();
}
