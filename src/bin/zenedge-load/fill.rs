//! `fill-log`: writes a realistic event log of a given size through the daemon's own writer
//! (so every decision is taken and recorded as in production), for the rebuild, match
//! lookup and API read benchmarks.
//!
//! The workload is a hospital's exams: exam `n` has an order (ORM^O01, accession
//! `FILL-<n>`, patient `FP-<n / 3>` so a patient has about three exams, consolidated into
//! cases) and a study of `--instances` instances (UID `1.2.826.0.1.3680043.10.998.<n>`)
//! completed after its last instance. Even exams send the order first, odd ones the study
//! first; every 20th order never gets a study and every 20th study never gets an order, so
//! the waiting lists are not empty. `--tasks` exams are in flight at once, so the writer
//! commits in groups as it does under load. No DICOM file is written: `InstanceStored`
//! events name files that do not exist, which nothing in the log reads back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zenedge::config::Config;
use zenedge::domain::InstanceOutcome;
use zenedge::events::{Event, InstanceStored, NewEvent};
use zenedge::log::{Aggregate, LogHandle, LogOptions};
use zenedge::projections::{self, Projections};
use zenedge::telemetry::Metrics;

use crate::{BoxError, FillArgs};

/// The study UID of exam `n`.
pub fn study_uid(n: u64) -> String {
    format!("1.2.826.0.1.3680043.10.998.{n}")
}

/// The accession number of exam `n`.
pub fn accession(n: u64) -> String {
    format!("FILL-{n}")
}

/// Whether exam `n` has a study (one in twenty has only its order, to stay unmatched).
pub fn has_study(n: u64) -> bool {
    n % 20 != 9
}

/// The patient id of exam `n`.
pub fn patient(n: u64) -> String {
    format!("FP-{}", n / 3)
}

fn order(n: u64) -> Result<NewEvent, BoxError> {
    let (acc, pid) = (accession(n), patient(n));
    let raw = format!(
        "MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261123101500||ORM^O01^ORM_O01|FILL{n}|P|2.5.1\r\
         PID|1||{pid}^^^HOSP^MR||Doe^Jane||19700101|F\r\
         PV1|1|{class}\r\
         ORC|NW|PL{n}|FI{n}||SC\r\
         OBR|1|PL{n}|FI{n}|CTHEAD^CT Head^L|||20261123100000||||||Headache|||1234^House^Greg||{acc}||||||CT\r",
        class = ["O", "I", "E"][(n % 3) as usize],
    );
    let received = zenedge::hl7::read(raw.as_bytes(), &zenedge::hl7::ReadOptions::default())
        .map_err(|e| format!("generated order does not parse: {e:?}"))?;
    Ok(zenedge::domain::received_event(raw.as_bytes(), &received, "fill-log", b"MSA|AA".to_vec()))
}

fn instance(n: u64, i: u32) -> NewEvent {
    let study = study_uid(n);
    let event = InstanceStored {
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
        sop_instance_uid: format!("{study}.1.{i}"),
        study_instance_uid: study.clone(),
        series_instance_uid: format!("{study}.1"),
        transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
        patient_id: Some(patient(n)),
        patient_name: Some("Doe^Jane".into()),
        other_patient_ids: Vec::new(),
        issuer_of_patient_id: None,
        accession_number: Some(accession(n)),
        modality: Some("CT".into()),
        study_date: Some("20261123".into()),
        study_time: Some("101500".into()),
        study_description: Some("CT Head".into()),
        series_number: Some("1".into()),
        instance_number: Some(i.to_string()),
        specific_character_set: None,
        charset_fallback: false,
        file_path: format!("instances/fill/{n}/{i}.dcm"),
        size: 524_288,
        sha256: format!("{:064x}", (n << 16) | u64::from(i)),
        calling_ae: "CT01".into(),
        called_ae: "ZENEDGE".into(),
        peer: "fill-log".into(),
        peer_identity: None,
        replaces_seq: None,
    };
    NewEvent::now(
        Aggregate { kind: "instance".into(), id: format!("{study}.1.{i}") },
        Event::InstanceStored(Box::new(event)),
    )
}

/// Sends exam `n`'s messages through the writer.
async fn exam(log: &LogHandle<Projections>, n: u64, instances: u32, window: Duration) -> Result<(), BoxError> {
    let with_order = n % 20 != 19;
    let with_study = has_study(n);
    if with_order && n.is_multiple_of(2) {
        zenedge::domain::hl7::store(log, order(n)?).await?;
    }
    if with_study {
        let mut last = 0;
        for i in 1..=instances {
            if let InstanceOutcome::Stored { seq, .. } = zenedge::domain::record_instance(log, instance(n, i)).await? {
                last = seq;
            }
        }
        zenedge::domain::complete_study(log, study_uid(n), last, window).await?;
    }
    if with_order && n % 2 == 1 {
        zenedge::domain::hl7::store(log, order(n)?).await?;
    }
    Ok(())
}

pub fn run_fill_command(args: &FillArgs) -> Result<std::process::ExitCode, BoxError> {
    let config = Config::load(&args.config)?;
    let mut options = LogOptions::from_config(&config);
    let window = config.matching.consolidation_window_for(&config.site.hospital_id);
    options.max_batch = options.max_batch.max(4096);
    options.queue_depth = options.queue_depth.max(4096);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let log = projections::open_log(&options, projections::schema(), Arc::new(Metrics::new()), None)?;
        let start_seq = log.reader().latest_seq()?;
        if start_seq > 0 {
            return Err(format!(
                "{} already holds {start_seq} events; fill an empty state directory",
                options.path.display()
            )
            .into());
        }
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..args.tasks {
            let (handle, reader, next, target, instances) =
                (log.handle(), log.reader(), next.clone(), args.events, args.instances);
            tasks.push(tokio::spawn(async move {
                while reader.latest_seq()? < target {
                    exam(&handle, next.fetch_add(1, Ordering::Relaxed), instances, window).await?;
                }
                Ok::<(), BoxError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let events = log.reader().latest_seq()?;
        let seconds = started.elapsed().as_secs_f64();
        let exams = next.load(Ordering::Relaxed);
        println!(
            "{events} events ({exams} exams) written in {seconds:.1} s ({:.0} events/s) to {}",
            events as f64 / seconds,
            options.path.display()
        );
        log.close().await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}
