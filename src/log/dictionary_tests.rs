use std::sync::Arc;

use super::super::value;
use super::*;
use crate::config::Site;
use crate::log::{Aggregate, LogOptions, NewEvent, Payload, Schema, Store, StoredEnvelope};
use crate::telemetry::Metrics;

/// Envelope-like samples: one site's layout, each message its own names and numbers.
fn site_traffic(count: usize, sender: &str) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            format!(
                "\u{8d}MSH|^~\\&|{sender}|GENERAL HOSPITAL|ZENEDGE|RADIOLOGY|20261207{:06}||ORM^O01|MSG{n:08}|P|2.5.1\r\
                 PID|1||PAT{:07}^^^HOSP^MR||DOE{n}^JANE^Q||19{:02}0{}1{}|F|||{} MAIN STREET^^SPRINGFIELD^IL^62701\r\
                 ORC|NW|PL{n:06}|FI{n:06}||SC||^^^20261207{:04}00\r\
                 OBR|1|PL{n:06}|FI{n:06}|CTHEAD^CT HEAD WITHOUT CONTRAST^L|||20261207100000|||||||||1234^REFERRER^ROBERT|||ACC{n:07}\r",
                n * 7,
                n * 31 % 9_999_999,
                n % 100,
                n % 9,
                n % 10,
                n * 3 % 1000,
                n % 2400
            )
            .into_bytes()
        })
        .collect()
}

#[test]
fn a_dictionary_trained_on_the_sites_traffic_is_adopted_when_it_pays_and_values_name_it() {
    let samples = site_traffic(2000, "EPIC");
    let Verdict::Adopt { bytes, before, ratio } = check(None, None, &samples) else {
        panic!("no dictionary adopted for repetitive traffic")
    };
    assert!(ratio <= before * ADOPT_BELOW, "{ratio} against {before}");
    let dictionary = register(&bytes);
    assert_eq!(dictionary.id, id_of(&bytes));

    value::use_dictionary(Some(dictionary));
    let stored = value::encode(samples[3].clone());
    value::use_dictionary(None);
    let without = value::encode(samples[3].clone());
    assert!(stored.len() < without.len(), "{} with the dictionary, {} without", stored.len(), without.len());
    let mut header = vec![value::MARK, value::FORMAT_ZSTD];
    let mut id = dictionary.id;
    while id >= 0x80 {
        header.push((id & 0x7f) as u8 | 0x80);
        id >>= 7;
    }
    header.push(id as u8);
    assert_eq!(&stored[..header.len()], header.as_slice(), "the value names its dictionary");
    assert_eq!(value::decode(9, &stored).unwrap().as_ref(), samples[3].as_slice());
}

#[test]
fn the_current_dictionary_is_kept_while_it_compresses_as_well_and_retrained_when_traffic_changes() {
    let dictionary = match check(None, None, &site_traffic(2000, "EPIC")) {
        Verdict::Adopt { bytes, .. } => register(&bytes),
        other => panic!("{other:?}"),
    };
    let baseline = ratio(Some(dictionary), &site_traffic(400, "EPIC"));
    assert!(matches!(check(Some(dictionary), Some(baseline), &site_traffic(2000, "EPIC")), Verdict::Keep { .. }));

    // Another interface engine, another layout: the current dictionary no longer fits.
    let other: Vec<Vec<u8>> = (0..2000)
        .map(|n| {
            format!(
                "\u{8d}{{\"resourceType\":\"ServiceRequest\",\"id\":\"sr-{n}\",\"status\":\"active\",\"intent\":\"order\",\
                 \"subject\":{{\"reference\":\"Patient/p{}\"}},\"code\":{{\"text\":\"MR KNEE LEFT\"}},\"identifier\":\
                 [{{\"system\":\"urn:acc\",\"value\":\"A{:08}\"}}],\"authoredOn\":\"2026-12-{:02}T10:00:00Z\"}}",
                n * 13,
                n * 17,
                n % 28 + 1
            )
            .into_bytes()
        })
        .collect();
    match check(Some(dictionary), Some(baseline), &other) {
        Verdict::Adopt { before, ratio, .. } => assert!(ratio < before, "{ratio} against {before}"),
        keep => panic!("the changed traffic kept the old dictionary: {keep:?} (baseline {baseline})"),
    }
}

#[test]
fn a_value_naming_a_dictionary_no_file_holds_is_corrupt_not_a_panic() {
    let mut stored = vec![value::MARK, value::FORMAT_ZSTD, 0xff, 0xff, 0xff, 0xff, 0x0f];
    stored.extend_from_slice(&zstd::bulk::compress(b"anything at all, long enough", 3).unwrap());
    let err = value::decode(5, &stored).unwrap_err();
    assert_eq!(err.fault, value::ValueFault::UnknownDictionary(u32::MAX));
    assert!(err.to_string().contains("event 5"), "{err}");
}

#[derive(Debug, serde::Serialize)]
struct Order {
    text: String,
}

impl Payload for Order {
    fn event_type(&self) -> &'static str {
        "Order"
    }
    fn event_version(&self) -> u32 {
        1
    }
    fn size_hint(&self) -> usize {
        self.text.len()
    }
}

#[derive(Debug, Clone, Default)]
struct Nothing;

impl crate::log::Applier for Nothing {
    type Event = Order;
    type Tables<'t> = ();
    fn tables(&self, _txn: &redb::WriteTransaction) {}
    fn apply(&self, (): &mut (), _meta: &crate::log::Meta<'_>, _event: &Order) -> Result<(), redb::Error> {
        Ok(())
    }
    fn finish(&self, (): &mut (), _site: &Site, _last_seq: u64) -> Result<(), redb::Error> {
        Ok(())
    }
}

fn options(dir: &std::path::Path) -> LogOptions {
    LogOptions::for_tests(dir)
}

fn orders(texts: &[Vec<u8>]) -> Vec<NewEvent<Order>> {
    texts
        .iter()
        .map(|t| {
            let text = String::from_utf8_lossy(t).into_owned();
            NewEvent::now(Aggregate { kind: "order".into(), id: text[..20].into() }, Order { text })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trainer_adopts_a_dictionary_once_enough_events_exist_and_it_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let schema = || Schema { version: 4, migrations: &[], tables: Vec::new() };
    let log =
        Store::open(&options(dir.path()), schema(), None).unwrap().start(Nothing, Arc::new(Metrics::new())).unwrap();
    let traffic = site_traffic(700, "CERNER");
    for chunk in traffic[..600].chunks(50) {
        log.handle().append(orders(chunk)).await.unwrap();
    }
    let stop = CancellationToken::new();
    let trainer = tokio::spawn(
        Trainer { reader: log.reader(), log: log.handle(), after: 500, metrics: Arc::new(Metrics::new()) }
            .run(stop.clone()),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stored(&log.reader()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no dictionary adopted after 600 events");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    trainer.await.unwrap();
    let id = stored(&log.reader())[0];

    let seqs = log.handle().append(orders(&traffic[600..])).await.unwrap();
    let named = |stored: &[u8]| stored.len() > 2 && value::is_compressed(stored) && stored[2] != 0;
    let raw = |seq| raw_of(&log.reader(), seq);
    assert!(!named(&raw(1)), "values written before the dictionary stay as they were");
    assert!(named(&raw(seqs[0])), "new values name the dictionary");
    log.close().await.unwrap();

    let store = Store::open(&options(dir.path()), schema(), None).unwrap();
    assert_eq!(store.dictionary.map(|d| d.id), Some(id), "the file names the dictionary new values use");
    let log = store.start(Nothing, Arc::new(Metrics::new())).unwrap();
    for seq in [1, seqs[0], seqs[99]] {
        let envelope = StoredEnvelope::from_bytes(&log.reader().raw_event(seq).unwrap().unwrap()).unwrap();
        let text = String::from_utf8_lossy(&traffic[seq as usize - 1]).into_owned();
        assert_eq!(envelope.data, rmpv::Value::Map(vec![("text".into(), text.as_str().into())]), "event {seq}");
    }
    let later = log.handle().append(orders(&traffic[..1])).await.unwrap();
    assert!(named(&raw_of(&log.reader(), later[0])), "after a reopen, new values still use the dictionary");
    log.close().await.unwrap();
}

fn raw_of(reader: &LogReader, seq: u64) -> Vec<u8> {
    let txn = reader.begin_read().unwrap();
    let events = txn.open_table(super::super::EVENTS).unwrap();
    redb::ReadableTable::get(&events, seq).unwrap().unwrap().value().to_vec()
}

#[test]
fn a_damaged_dictionary_refuses_the_file_with_a_message_saying_how_to_restore() {
    let dir = tempfile::tempdir().unwrap();
    let schema = || Schema { version: 4, migrations: &[], tables: Vec::new() };
    drop(Store::open(&options(dir.path()), schema(), None).unwrap());
    {
        let db = redb::Database::open(dir.path().join("zenedge.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(VALUE_DICTIONARIES).unwrap().insert(42, b"not the bytes of id 42".as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&options(dir.path()), schema(), None).unwrap_err();
    assert!(matches!(err, crate::log::OpenError::CorruptDictionary { id: 42, .. }), "{err}");
    assert!(err.to_string().contains("zenedge restore"), "{err}");
}
