//! Sealing at rest: values that carry patient data are stored encrypted under their patient's
//! data key and read back in clear; a value moved, altered, truncated or whose key is gone is
//! refused (never a panic); the master key file is checked before anything is opened.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::log::keys::{Subject, destroy};
use crate::log::master_key::{MasterKey, MasterKeyError};
use crate::log::value::{self, ValueFault};
use crate::log::{
    Aggregate, Applier, EVENTS, LogOptions, Meta, NewEvent, OpenError, Payload, Schema, Store, StoredEnvelope,
};
use crate::telemetry::Metrics;

/// A payload about a patient (or about none).
#[derive(Debug, serde::Serialize)]
struct Chart {
    patient: Option<String>,
    text: String,
    sensitive: bool,
}

impl Payload for Chart {
    fn event_type(&self) -> &'static str {
        "Chart"
    }
    fn event_version(&self) -> u32 {
        1
    }
    fn size_hint(&self) -> usize {
        self.text.len()
    }
    fn subject(&self) -> Subject<'_> {
        match (&self.patient, self.sensitive) {
            (Some(p), _) => Subject::Patient(p),
            (None, true) => Subject::Message,
            (None, false) => Subject::Clear,
        }
    }
}

struct Nothing;

impl Applier for Nothing {
    type Event = Chart;
    type Tables<'t> = ();
    fn tables(&self, _txn: &redb::WriteTransaction) {}
    fn apply(&self, (): &mut (), _meta: &Meta<'_>, _event: &Chart) -> Result<(), redb::Error> {
        Ok(())
    }
    fn finish(&self, (): &mut (), _site: &crate::config::Site, _last_seq: u64) -> Result<(), redb::Error> {
        Ok(())
    }
}

fn chart(patient: Option<&str>, text: &str, sensitive: bool) -> NewEvent<Chart> {
    let event = Chart { patient: patient.map(Into::into), text: text.into(), sensitive };
    NewEvent::now(Aggregate { kind: "chart".into(), id: "c".into() }, event)
}

fn schema() -> Schema {
    Schema { version: 4, migrations: &[], tables: Vec::new() }
}

fn sealed(dir: &std::path::Path) -> LogOptions {
    LogOptions::for_tests(dir).sealed_with(dir.join("master.key"))
}

fn stored(log: &crate::log::Log<Nothing>, seq: u64) -> Vec<u8> {
    let txn = log.reader().begin_read().unwrap();
    let events = txn.open_table(EVENTS).unwrap();
    events.get(seq).unwrap().unwrap().value().to_vec()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const NAME: &str = "Zebediah^Quuxworth";
const PATIENT: &str = "PID-ZQ-774411";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_values_are_stored_sealed_and_read_back_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let options = sealed(dir.path());
    let log = Store::open(&options, schema(), None).unwrap().start(Nothing, Arc::new(Metrics::new())).unwrap();
    let long = format!("{NAME} {}", "x".repeat(500));
    log.handle().append(vec![chart(Some(PATIENT), NAME, true), chart(Some(PATIENT), &long, true)]).await.unwrap();
    for seq in [1, 2] {
        let raw = stored(&log, seq);
        assert!(value::is_sealed(&raw), "event {seq} is sealed");
        assert!(!contains(&raw, NAME) && !contains(&raw, PATIENT) && !contains(&raw, "Zebediah"));
        let clear = StoredEnvelope::from_bytes(&log.reader().raw_event(seq).unwrap().unwrap()).unwrap();
        assert_eq!(clear.seq, seq);
        assert!(contains(&log.reader().raw_event(seq).unwrap().unwrap(), NAME), "read back in clear");
    }
    let (one, two) = (value::header(&stored(&log, 1)).unwrap(), value::header(&stored(&log, 2)).unwrap());
    assert_eq!(one.key_id, two.key_id, "one key per patient");
    log.close().await.unwrap();
    let file = std::fs::read(dir.path().join("zenedge.redb")).unwrap();
    assert!(!contains(&file, "Zebediah") && !contains(&file, PATIENT), "neither name nor id anywhere in the file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_without_patient_data_stay_clear_and_one_without_a_patient_gets_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        Store::open(&sealed(dir.path()), schema(), None).unwrap().start(Nothing, Arc::new(Metrics::new())).unwrap();
    log.handle().append(vec![chart(None, "a", false), chart(None, "b", true), chart(None, "c", true)]).await.unwrap();
    assert!(!value::is_sealed(&stored(&log, 1)));
    let (b, c) = (value::header(&stored(&log, 2)).unwrap(), value::header(&stored(&log, 3)).unwrap());
    assert_ne!(b.key_id, c.key_id, "a key per message");
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_moved_altered_truncated_or_under_another_key_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        Store::open(&sealed(dir.path()), schema(), None).unwrap().start(Nothing, Arc::new(Metrics::new())).unwrap();
    log.handle().append(vec![chart(Some(PATIENT), NAME, true), chart(Some("other"), NAME, true)]).await.unwrap();
    let (one, two) = (stored(&log, 1), stored(&log, 2));
    assert!(value::decode(1, &one).is_ok());
    assert_eq!(value::decode(2, &one).unwrap_err().fault, ValueFault::Misplaced(1), "swapped values are refused");
    let mut renumbered = one.clone();
    renumbered[2] = 2;
    assert_eq!(value::decode(2, &renumbered).unwrap_err().fault, ValueFault::Unauthentic, "header is bound");
    let mut other_key = one.clone();
    other_key[10..value::HEADER_LEN].copy_from_slice(&two[10..value::HEADER_LEN]);
    assert_eq!(value::decode(1, &other_key).unwrap_err().fault, ValueFault::Unauthentic, "wrong key refused");
    let mut flipped = one.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(value::decode(1, &flipped).unwrap_err().fault, ValueFault::Unauthentic);
    for len in 2..one.len() {
        assert!(value::decode(1, &one[..len]).is_err(), "a value cut at {len} bytes is refused");
    }
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_patients_key_leaves_that_patients_values_unreadable_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        Store::open(&sealed(dir.path()), schema(), None).unwrap().start(Nothing, Arc::new(Metrics::new())).unwrap();
    log.handle().append(vec![chart(Some(PATIENT), NAME, true), chart(Some("other"), "kept", true)]).await.unwrap();
    let id = value::header(&stored(&log, 1)).unwrap().key_id;
    {
        let db = log.reader().database().clone();
        let txn = db.begin_write().unwrap();
        assert!(destroy(&txn, &id).unwrap(), "one delete");
        txn.commit().unwrap();
    }
    assert_eq!(value::decode(1, &stored(&log, 1)).unwrap_err().fault, ValueFault::UnknownKey);
    assert!(log.reader().raw_event(1).is_err());
    assert!(contains(&log.reader().raw_event(2).unwrap().unwrap(), "kept"));
    log.close().await.unwrap();
}

#[test]
fn a_wrong_garbled_exposed_or_missing_master_key_refuses_the_open_as_a_configuration_problem() {
    let dir = tempfile::tempdir().unwrap();
    let options = sealed(dir.path());
    let key = dir.path().join("master.key");
    drop(Store::open(&options, schema(), None).unwrap());
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o400, "created owner-read-only");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o440)).unwrap();
    let err = Store::open(&options, schema(), None).unwrap_err();
    assert!(matches!(err, OpenError::MasterKey(MasterKeyError::Permissions { mode: 0o440, .. })), "{err}");
    assert!(err.is_config());

    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let err = Store::open(&options, schema(), None).unwrap_err();
    assert!(
        matches!(err, OpenError::MasterKey(MasterKeyError::Missing { .. })),
        "never a new key over old data: {err}"
    );

    write_key(&key, b"not hex at all\n");
    let err = Store::open(&options, schema(), None).unwrap_err();
    assert!(matches!(err, OpenError::MasterKey(MasterKeyError::Garbled { .. })), "{err}");

    std::fs::remove_file(&key).unwrap();
    MasterKey::generate().create(&key).unwrap();
    let err = Store::open(&options, schema(), None).unwrap_err();
    assert!(matches!(err, OpenError::MasterKey(MasterKeyError::WrongKey { .. })), "{err}");

    std::fs::remove_file(&key).unwrap();
    write_key(&key, &saved);
    assert!(Store::open(&options, schema(), None).is_ok(), "the right key opens again");
}

fn write_key(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
}
