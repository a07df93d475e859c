//! Builders shared by the log's tests: options, a clock the test moves, HL7 messages and
//! DICOM studies (invented patients).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;

use super::CompletionOutcome;
use crate::config::{DiskReserve, Site};
use crate::events::{Event, InstanceStored, NewEvent};
use crate::log::{Aggregate, Clock, Log, LogOptions, OpenError};
use crate::projections::{self, Projections};
use crate::telemetry::Metrics;

/// The window within which a study joins a case of its patient, unless a test says otherwise.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 3600);

pub(crate) fn site() -> Site {
    Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() }
}

pub(crate) fn options(dir: &std::path::Path) -> LogOptions {
    LogOptions {
        path: dir.join("zenedge.redb"),
        site: site(),
        disk_reserve: DiskReserve::Bytes(0),
        queue_depth: 1024,
        max_batch: 1024,
        cache_size: 4 << 20,
        clock: Arc::new(Timestamp::now),
        // Sealed as the daemon writes by default, so every domain test reads sealed values.
        master_key: Some(crate::log::MasterKeyFile { path: dir.join("master.key"), create: true }),
        seal: true,
    }
}

/// Opens the log as the daemon does, with the projections' schema (a layer that keeps tables
/// of its own and copies the file adds them: see the snapshot's tests).
pub(crate) fn open(options: &LogOptions, metrics: Arc<Metrics>) -> Result<Log<Projections>, OpenError> {
    projections::open_log(options, projections::schema(), metrics, None)
}

/// A clock that stands still until the test moves it.
#[derive(Debug, Clone)]
pub(crate) struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn at(start: Timestamp) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(start.as_microsecond())))
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(i64::try_from(by.as_micros()).expect("a test duration"), Ordering::SeqCst);
    }

    /// The clock for the log's writer.
    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || Timestamp::from_microsecond(now.load(Ordering::SeqCst)).expect("a valid time"))
    }

    /// The time it shows.
    pub fn now(&self) -> Timestamp {
        (self.clock())()
    }
}

/// An `HL7MessageReceived` for `raw` (segments separated by `\r`) as the MLLP listener makes it.
pub(crate) fn hl7(raw: &str) -> NewEvent {
    let received = crate::hl7::read(raw.as_bytes(), &crate::hl7::ReadOptions::default()).expect("a valid message");
    super::received_event(raw.as_bytes(), &received, "test", format!("ACK {}", received.control_id()).into_bytes())
}

/// An order message: ORC-1 `control` ("NW", "XO", "CA"…) for placer number `placer` with
/// accession `acc` for patient `ids[0]` (other ids as PID-3 repetitions).
pub(crate) struct Order<'a> {
    pub control_id: &'a str,
    pub control: &'a str,
    pub placer: &'a str,
    pub accession: &'a str,
    pub ids: &'a [&'a str],
    pub class: &'a str,
    pub status: &'a str,
    pub clinical_info: &'a str,
}

impl Order<'_> {
    pub fn new<'a>(control_id: &'a str, placer: &'a str, accession: &'a str, patient: &'a [&'a str]) -> Order<'a> {
        Order {
            control_id,
            control: "NW",
            placer,
            accession,
            ids: patient,
            class: "O",
            status: "SC",
            clinical_info: "Headache",
        }
    }

    pub fn raw(&self) -> String {
        let pid3 = self.ids.iter().map(|id| format!("{id}^^^HOSP^MR")).collect::<Vec<_>>().join("~");
        let Order { control_id, control, placer, accession, class, status, clinical_info, .. } = self;
        format!(
            "MSH|^~\\&|RIS|HOSP|ZENEDGE|EDGE|20261123101500||ORM^O01^ORM_O01|{control_id}|P|2.5.1\r\
             PID|1||{pid3}||Doe^Jane||19700101|F\r\
             PV1|1|{class}\r\
             ORC|{control}|{placer}|F-{placer}||{status}\r\
             OBR|1|{placer}|F-{placer}|CTHEAD^CT Head^L|||20261123100000||||||{clinical_info}|||1234^House^Greg||{accession}||||||CT\r"
        )
    }

    pub fn event(&self) -> NewEvent {
        hl7(&self.raw())
    }
}

/// ADT^A40: `prior` merged into `surviving`.
pub(crate) fn merge(control_id: &str, surviving: &str, prior: &str) -> NewEvent {
    hl7(&format!(
        "MSH|^~\\&|PAS|HOSP|ZENEDGE|EDGE|20261123101500||ADT^A40^ADT_A39|{control_id}|P|2.5.1\r\
         EVN|A40|20261123101500\r\
         PID|1||{surviving}^^^HOSP^MR||Doe^Jane||19700101|F\r\
         MRG|{prior}^^^HOSP^MR\r"
    ))
}

/// A study as the modality describes it.
#[derive(Debug, Clone)]
pub(crate) struct Study {
    pub uid: String,
    pub accession: Option<String>,
    pub patient_id: String,
    pub other_ids: Vec<String>,
    pub modality: String,
}

impl Study {
    pub fn new(uid: &str, accession: &str, patient_id: &str) -> Study {
        Study {
            uid: uid.into(),
            accession: (!accession.is_empty()).then(|| accession.into()),
            patient_id: patient_id.into(),
            other_ids: Vec::new(),
            modality: "CT".into(),
        }
    }

    /// The `InstanceStored` of its instance `n`.
    pub fn instance(&self, n: u32) -> NewEvent {
        let event = InstanceStored {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: format!("{}.{n}", self.uid),
            study_instance_uid: self.uid.clone(),
            series_instance_uid: format!("{}.0", self.uid),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            patient_id: Some(self.patient_id.clone()),
            patient_name: Some("Doe^Jane".into()),
            other_patient_ids: self.other_ids.clone(),
            issuer_of_patient_id: None,
            accession_number: self.accession.clone(),
            modality: Some(self.modality.clone()),
            study_date: Some("20261123".into()),
            study_time: None,
            study_description: None,
            series_number: None,
            instance_number: Some(n.to_string()),
            specific_character_set: None,
            charset_fallback: false,
            file_path: format!("instances/{}/{n}.dcm", self.uid),
            size: 1,
            sha256: format!("{n:064x}"),
            calling_ae: "CT01".into(),
            called_ae: "ZENEDGE".into(),
            peer: "test".into(),
            peer_identity: None,
            replaces_seq: None,
        };
        NewEvent::now(
            Aggregate { kind: "instance".into(), id: format!("{}.{n}", self.uid) },
            Event::InstanceStored(Box::new(event)),
        )
    }

    /// Stores `instances` instances and completes the study, as the stability timer would.
    pub async fn arrive(&self, log: &Log<Projections>, instances: u32) -> CompletionOutcome {
        self.arrive_within(log, instances, DAY).await
    }

    /// As [`Study::arrive`], with cases consolidated within `window`.
    pub async fn arrive_within(&self, log: &Log<Projections>, instances: u32, window: Duration) -> CompletionOutcome {
        for n in 1..=instances {
            crate::domain::record_instance(&log.handle(), self.instance(n)).await.expect("stored");
        }
        self.complete_within(log, window).await
    }

    /// Completes the study if it has instances not yet covered by a completion.
    pub async fn complete(&self, log: &Log<Projections>) -> CompletionOutcome {
        self.complete_within(log, DAY).await
    }

    async fn complete_within(&self, log: &Log<Projections>, window: Duration) -> CompletionOutcome {
        let pending = crate::projections::views::pending_studies(&log.reader()).expect("readable");
        let last = pending.iter().find(|p| p.study_instance_uid == self.uid).map_or(0, |p| p.last_instance_seq);
        crate::domain::complete_study(&log.handle(), self.uid.clone(), last, window).await.expect("completed")
    }
}
