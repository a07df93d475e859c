use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::audit::{kinds, page};
use crate::log::LogOptions;
use crate::telemetry::Metrics;

fn record(n: i64) -> AuditRecord {
    kinds::application_activity("e1", true, Timestamp::from_second(1_800_000_000 + n).unwrap())
}

fn framed(entries: &[(u64, i64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(pos, n) in entries {
        frame(&mut out, &rmp_serde::to_vec_named(&Entry { pos, record: record(n) }).unwrap());
    }
    out
}

#[test]
fn frames_are_read_back_up_to_the_first_torn_or_damaged_one() {
    let bytes = framed(&[(1, 1), (2, 2), (3, 3)]);
    assert_eq!(frames(&bytes).iter().map(|e| e.pos).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(frames(&bytes[..bytes.len() - 1]).len(), 2, "a torn last frame is cut off");
    let mut damaged = bytes.clone();
    let second = bytes.len() / 2;
    damaged[second] ^= 0xff;
    assert!(frames(&damaged).len() < 3, "a damaged frame ends the journal");
    assert!(frames(&[]).is_empty());
}

#[test]
fn a_preallocated_file_is_read_back_up_to_its_zeros_and_a_frame_torn_into_them_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.log");
    let file = preallocated(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SEGMENT_BYTES, "written full of zeros when created");
    let bytes = framed(&[(1, 1), (2, 2)]);
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes, 0).unwrap();
    let read = std::fs::read(&path).unwrap();
    assert_eq!(frames(&read).iter().map(|e| e.pos).collect::<Vec<_>>(), [1, 2]);
    // A crash within the third frame's write: its header made it, its payload did not.
    let third = framed(&[(3, 3)]);
    std::os::unix::fs::FileExt::write_all_at(&file, &third[..12], bytes.len() as u64).unwrap();
    assert_eq!(frames(&std::fs::read(&path).unwrap()).len(), 2);
    assert!(preallocated(&path).is_err(), "never over an existing file");
}

fn options(dir: &Path) -> LogOptions {
    LogOptions::for_tests(dir)
}

/// Polls the trail until it holds `n` records (10 s at most).
async fn trail_of(reader: &LogReader, n: usize) -> Vec<crate::audit::StoredRecord> {
    for _ in 0..1000 {
        let rows = page(reader, 0, 100).unwrap();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the trail never held {n} records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_durable_in_the_journal_reach_the_trail_and_a_restart_copies_what_was_left_once() {
    let dir = tempfile::tempdir().unwrap();
    let schema = crate::projections::schema().with(crate::audit::tables());
    let log = crate::projections::open_log(&options(dir.path()), schema, Arc::new(Metrics::new()), None).unwrap();
    let stop = CancellationToken::new();
    let open = || Journal::open(dir.path(), log.handle(), log.reader(), log.disk_guard(), stop.clone());
    let journal = open().await.unwrap();
    journal.record(vec![record(1), record(2)]).await.unwrap();
    journal.record(vec![record(3)]).await.unwrap();
    let rows = trail_of(&log.reader(), 3).await;
    assert_eq!(rows.iter().map(|r| r.record.at.as_second() - 1_800_000_000).collect::<Vec<_>>(), [1, 2, 3]);
    for _ in 0..1000 {
        if copied(&log.reader()).unwrap() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(copied(&log.reader()).unwrap(), 3, "the position commits with the copy");
    // What a crash leaves: a copied frame, two that were not, and a torn one.
    let mut left = framed(&[(3, 3), (4, 4), (5, 5)]);
    let torn = framed(&[(6, 6)]);
    left.extend_from_slice(&torn[..torn.len() - 3]);
    std::fs::write(dir.path().join(DIR).join(format!("{:020}.log", 3)), left).unwrap();
    let journal = open().await.unwrap();
    let rows = page(&log.reader(), 0, 100).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.record.at.as_second() - 1_800_000_000).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "each record once, the torn one never acknowledged"
    );
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0, "the journal starts empty");
    journal.record(vec![record(7)]).await.unwrap();
    let rows = trail_of(&log.reader(), 6).await;
    assert_eq!(rows[5].record.at.as_second() - 1_800_000_000, 7);
    stop.cancel();
    log.close().await.unwrap();
}
