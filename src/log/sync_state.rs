//! The sync worker's durable state: its cursor and its dead letters.
//!
//! Neither is a projection: both record what the hub answered, which the log cannot tell
//! again, so `zenedge rebuild` and `verify` neither drop nor digest them.
//!
//! * **Cursor.** `meta["sync_cursor"]` (decimal): every event up to and including it is
//!   stored on the hub. Absent means 0. It is written only after the hub said so (`200`, or a
//!   `409` that named the hub's own position).
//! * **Dead letters.** `sync_dead_letters`: `u64 seq → msgpack` [`DeadLetter`]: an event the
//!   hub refused on its own (after bisecting), parked so that the rest of the log keeps
//!   flowing. While `parked`, `retry` or `skipped` it travels in batches as a skipped
//!   sequence number; `retry` also asks the worker to send it once more on its own.
//!
//! Every write goes through the log writer like any other request (its own small
//! transaction, committed durably before the caller hears back); reads are short read
//! transactions.

use jiff::Timestamp;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::envelope::head_event_id;
use super::reader::{LogReader, ReadError, Storage, decode_row};
use super::store::{EVENTS, META};
use super::txn::{Applier, Txn, corrupt};
use super::writer::{AppendError, LogHandle};

/// `seq → msgpack DeadLetter`.
pub(crate) const SYNC_DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("sync_dead_letters");

/// The tables the sync keeps besides rows of `meta`, for the file's schema.
pub fn tables() -> Vec<super::schema::TableSpec> {
    vec![super::schema::TableSpec::of(&SYNC_DEAD_LETTERS).on_first_write()]
}

/// The `meta` key of the sync cursor.
pub(crate) const CURSOR_KEY: &str = "sync_cursor";

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadLetterStatus {
    /// Refused by the hub; waits for an operator.
    Parked,
    /// An operator asked for one more delivery; the worker sends it on its own.
    Retry,
    /// An operator gave it up: the hub keeps it as skipped.
    Skipped,
    /// Redelivered and stored by the hub.
    Delivered,
}

impl DeadLetterStatus {
    /// Not in batch bodies: listed as skipped instead.
    pub fn travels_as_skipped(self) -> bool {
        !matches!(self, DeadLetterStatus::Delivered)
    }

    /// Needs an operator (counts towards `/readyz`'s `degraded`).
    pub fn is_open(self) -> bool {
        matches!(self, DeadLetterStatus::Parked | DeadLetterStatus::Retry)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Parked => "parked",
            DeadLetterStatus::Retry => "retry",
            DeadLetterStatus::Skipped => "skipped",
            DeadLetterStatus::Delivered => "delivered",
        }
    }
}

/// An event the hub refused, as stored in `sync_dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_type: String,
    /// The hub's reason, from its last refusal.
    pub reason: String,
    pub status: DeadLetterStatus,
    /// Refusals so far (1 when first parked).
    pub attempts: u32,
    pub parked_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An operator's request about a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterAction {
    /// Send it to the hub once more (from `parked` or `skipped`).
    Retry,
    /// Give it up (from `parked` or `retry`).
    Skip,
}

/// Why an operator's request was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    WrongState(DeadLetterStatus),
}

/// Dead letters by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterCounts {
    pub parked: u64,
    pub retry: u64,
    pub skipped: u64,
    pub delivered: u64,
}

impl DeadLetterCounts {
    /// Parked or waiting for redelivery: an operator must look.
    pub fn open(&self) -> u64 {
        self.parked + self.retry
    }
}

/// The events after the cursor that make the next batch: their stored bytes back to back
/// (one allocation, no decoding), and the sequence numbers held back as dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBatch {
    /// The range `first..=last`; both 0 when there is nothing after the cursor.
    pub first: u64,
    pub last: u64,
    /// The events that travel, in order.
    pub seqs: Vec<u64>,
    /// End offset in `bytes` of each of `seqs`.
    pub ends: Vec<usize>,
    pub bytes: Vec<u8>,
    /// Sequence numbers in the range that are dead letters (not in `seqs`).
    pub skipped: Vec<u64>,
    /// The `event_id` of the event just before `first` (the chain the hub checks); `None`
    /// when the batch starts the log.
    pub prev_event_id: Option<uuid::Uuid>,
}

impl RawBatch {
    pub fn is_empty(&self) -> bool {
        self.first == 0
    }

    /// Sequence numbers in the range (events and skipped ones).
    pub fn range_len(&self) -> usize {
        if self.is_empty() { 0 } else { (self.last - self.first + 1) as usize }
    }

    /// The stored envelopes of `seqs`, in order.
    pub fn envelopes(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.bytes[start..self.ends[i]]
        })
    }

    fn push(&mut self, seq: u64, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.seqs.push(seq);
        self.ends.push(self.bytes.len());
        self.extend_range(seq);
    }

    fn extend_range(&mut self, seq: u64) {
        if self.first == 0 {
            self.first = seq;
        }
        self.last = seq;
    }
}

impl<A: Applier> LogHandle<A> {
    /// Records that the hub holds every event up to `seq`; returns once durable.
    pub async fn set_sync_cursor(&self, seq: u64) -> Result<(), AppendError> {
        self.request(seq, apply_cursor::<A>).await
    }

    /// Parks `seq` with the hub's `reason`, or parks it again (one more attempt) after a
    /// refused redelivery. A letter an operator skipped meanwhile stays skipped.
    pub async fn park_dead_letter(
        &self,
        seq: u64,
        event_type: String,
        reason: String,
    ) -> Result<DeadLetter, AppendError> {
        self.request((seq, event_type, reason), apply_park::<A>).await
    }

    /// Marks `seq` delivered: the hub stored its redelivery.
    pub async fn dead_letter_delivered(&self, seq: u64) -> Result<Option<DeadLetter>, AppendError> {
        self.request(seq, apply_delivered::<A>).await
    }

    /// Applies an operator's `action` to dead letter `seq`.
    pub async fn dead_letter_action(
        &self,
        seq: u64,
        action: DeadLetterAction,
    ) -> Result<Result<DeadLetter, Refusal>, AppendError> {
        self.request((seq, action), apply_action::<A>).await
    }
}

type Applied<O> = Result<Result<O, AppendError>, redb::Error>;

fn apply_cursor<A: Applier>(t: &mut Txn<'_, '_, A>, seq: u64) -> Applied<()> {
    let mut meta = t.txn().open_table(META)?;
    meta.insert(CURSOR_KEY, seq.to_string().as_str())?;
    t.dirty = true;
    Ok(Ok(()))
}

fn read_letter(table: &redb::Table<'_, u64, &[u8]>, seq: u64) -> Result<Option<DeadLetter>, redb::Error> {
    match table.get(seq)? {
        Some(v) => rmp_serde::from_slice(v.value()).map(Some).map_err(|e| corrupt("sync_dead_letters", e)),
        None => Ok(None),
    }
}

fn write_letter<A: Applier>(t: &mut Txn<'_, '_, A>, seq: u64, letter: &DeadLetter) -> Result<(), redb::Error> {
    let bytes = rmp_serde::to_vec_named(letter).map_err(|e| corrupt("sync_dead_letters", e))?;
    t.txn().open_table(SYNC_DEAD_LETTERS)?.insert(seq, bytes.as_slice())?;
    t.dirty = true;
    Ok(())
}

fn existing<A: Applier>(t: &Txn<'_, '_, A>, seq: u64) -> Result<Option<DeadLetter>, redb::Error> {
    let table = t.txn().open_table(SYNC_DEAD_LETTERS)?;
    read_letter(&table, seq)
}

fn apply_park<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    (seq, event_type, reason): (u64, String, String),
) -> Applied<DeadLetter> {
    let now = t.recorded_at;
    let letter = match existing(t, seq)? {
        Some(old) => DeadLetter {
            reason,
            status: if old.status == DeadLetterStatus::Skipped { old.status } else { DeadLetterStatus::Parked },
            attempts: old.attempts + 1,
            updated_at: now,
            ..old
        },
        None => DeadLetter {
            event_type,
            reason,
            status: DeadLetterStatus::Parked,
            attempts: 1,
            parked_at: now,
            updated_at: now,
        },
    };
    write_letter(t, seq, &letter)?;
    Ok(Ok(letter))
}

fn apply_delivered<A: Applier>(t: &mut Txn<'_, '_, A>, seq: u64) -> Applied<Option<DeadLetter>> {
    let Some(old) = existing(t, seq)? else { return Ok(Ok(None)) };
    let letter = DeadLetter { status: DeadLetterStatus::Delivered, updated_at: t.recorded_at, ..old };
    write_letter(t, seq, &letter)?;
    Ok(Ok(Some(letter)))
}

fn apply_action<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    (seq, action): (u64, DeadLetterAction),
) -> Applied<Result<DeadLetter, Refusal>> {
    use DeadLetterStatus::*;
    let Some(old) = existing(t, seq)? else { return Ok(Ok(Err(Refusal::NotFound))) };
    let status = match (action, old.status) {
        (DeadLetterAction::Retry, Parked | Skipped) => Retry,
        (DeadLetterAction::Skip, Parked | Retry) => Skipped,
        (_, current) => return Ok(Ok(Err(Refusal::WrongState(current)))),
    };
    let letter = DeadLetter { status, updated_at: t.recorded_at, ..old };
    write_letter(t, seq, &letter)?;
    Ok(Ok(Ok(letter)))
}

impl LogReader {
    /// The sync cursor: the hub holds every event up to it (0: nothing yet).
    pub fn sync_cursor(&self) -> Result<u64, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let meta = txn.open_table(META).storage()?;
        let Some(value) = meta.get(CURSOR_KEY).storage()? else { return Ok(0) };
        value.value().parse().map_err(|_| ReadError::Row {
            table: "meta",
            reason: format!("sync_cursor {:?} is not a number", value.value()),
        })
    }

    /// Every dead letter, by sequence number.
    pub fn dead_letters(&self) -> Result<Vec<(u64, DeadLetter)>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let Some(table) = dead_letter_table(&txn)? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for row in table.iter().storage()? {
            let (k, v) = row.storage()?;
            out.push((k.value(), decode_row("sync_dead_letters", v.value())?));
        }
        Ok(out)
    }

    /// One dead letter.
    pub fn dead_letter(&self, seq: u64) -> Result<Option<DeadLetter>, ReadError> {
        let txn = self.db.begin_read().storage()?;
        let Some(table) = dead_letter_table(&txn)? else { return Ok(None) };
        match table.get(seq).storage()? {
            Some(v) => Ok(Some(decode_row("sync_dead_letters", v.value())?)),
            None => Ok(None),
        }
    }

    /// Dead letters by status.
    pub fn dead_letter_counts(&self) -> Result<DeadLetterCounts, ReadError> {
        let mut counts = DeadLetterCounts::default();
        for (_, letter) in self.dead_letters()? {
            *match letter.status {
                DeadLetterStatus::Parked => &mut counts.parked,
                DeadLetterStatus::Retry => &mut counts.retry,
                DeadLetterStatus::Skipped => &mut counts.skipped,
                DeadLetterStatus::Delivered => &mut counts.delivered,
            } += 1;
        }
        Ok(counts)
    }

    /// The next batch after `after`, in one read transaction: at most `max_events`
    /// sequence numbers and `max_bytes` of stored envelopes (a single larger event goes
    /// alone). Dead letters that travel as skipped are listed, not copied.
    pub fn sync_batch(&self, after: u64, max_events: usize, max_bytes: usize) -> Result<RawBatch, ReadError> {
        let mut batch = RawBatch::default();
        if after == u64::MAX || max_events == 0 {
            return Ok(batch);
        }
        let txn = self.db.begin_read().storage()?;
        let window_end = after.saturating_add(max_events as u64);
        let mut skipped = Vec::new();
        if let Some(table) = dead_letter_table(&txn)? {
            for row in table.range(after + 1..=window_end).storage()? {
                let (k, v) = row.storage()?;
                let letter: DeadLetter = decode_row("sync_dead_letters", v.value())?;
                if letter.status.travels_as_skipped() {
                    skipped.push(k.value());
                }
            }
        }
        let mut skipped = skipped.into_iter().peekable();
        let events = txn.open_table(EVENTS).storage()?;
        if after > 0
            && let Some(prev) = events.get(after).storage()?
        {
            let id = head_event_id(prev.value());
            batch.prev_event_id = Some(id.map_err(|reason| ReadError::Row { table: "events", reason })?);
        }
        batch.bytes.reserve(max_bytes.min(64 << 20));
        for row in events.range(after + 1..=window_end).storage()? {
            let (k, v) = row.storage()?;
            let seq = k.value();
            if skipped.next_if_eq(&seq).is_some() {
                batch.skipped.push(seq);
                batch.extend_range(seq);
                continue;
            }
            let bytes = v.value();
            if !batch.seqs.is_empty() && batch.bytes.len() + bytes.len() > max_bytes {
                break;
            }
            batch.push(seq, bytes);
            if batch.bytes.len() >= max_bytes {
                break;
            }
        }
        Ok(batch)
    }
}

/// The dead-letter table, `None` while no letter was ever parked (it is created then).
fn dead_letter_table(
    txn: &redb::ReadTransaction,
) -> Result<Option<redb::ReadOnlyTable<u64, &'static [u8]>>, ReadError> {
    match txn.open_table(SYNC_DEAD_LETTERS) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(ReadError::Storage(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Log;
    use super::super::test_support::{Order, options};
    use super::*;
    use crate::events::NewEvent;
    use crate::projections::Projections;
    use crate::telemetry::Metrics;

    fn open(dir: &std::path::Path) -> Log<Projections> {
        crate::log::test_support::open(&options(dir), Arc::new(Metrics::new())).unwrap()
    }

    fn orders(n: usize) -> Vec<NewEvent> {
        (0..n).map(|i| Order::new(&format!("C-{i}"), &format!("P-{i}"), "ACC", &["PAT"]).event()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cursor_and_dead_letters_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        log.handle().append(orders(3)).await.unwrap();
        assert_eq!(log.reader().sync_cursor().unwrap(), 0);
        log.handle().set_sync_cursor(2).await.unwrap();
        let parked = log.handle().park_dead_letter(3, "HL7MessageReceived".into(), "bad".into()).await.unwrap();
        assert_eq!((parked.status, parked.attempts), (DeadLetterStatus::Parked, 1));
        log.close().await.unwrap();
        let log = open(dir.path());
        assert_eq!(log.reader().sync_cursor().unwrap(), 2);
        assert_eq!(log.reader().dead_letters().unwrap(), vec![(3, parked)]);
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operator_actions_follow_the_status_rules() {
        use DeadLetterAction::{Retry as RetryIt, Skip};
        use DeadLetterStatus::*;
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let h = log.handle();
        assert_eq!(h.dead_letter_action(9, RetryIt).await.unwrap(), Err(Refusal::NotFound));
        h.park_dead_letter(9, "X".into(), "first".into()).await.unwrap();
        assert_eq!(h.dead_letter_action(9, RetryIt).await.unwrap().unwrap().status, Retry);
        assert_eq!(h.dead_letter_action(9, RetryIt).await.unwrap(), Err(Refusal::WrongState(Retry)));
        let again = h.park_dead_letter(9, "X".into(), "second".into()).await.unwrap();
        assert_eq!((again.status, again.attempts, again.reason.as_str()), (Parked, 2, "second"));
        assert_eq!(h.dead_letter_action(9, Skip).await.unwrap().unwrap().status, Skipped);
        assert_eq!(h.dead_letter_action(9, Skip).await.unwrap(), Err(Refusal::WrongState(Skipped)));
        let still = h.park_dead_letter(9, "X".into(), "third".into()).await.unwrap();
        assert_eq!(still.status, Skipped, "a skipped letter stays skipped");
        h.dead_letter_action(9, RetryIt).await.unwrap().unwrap();
        assert_eq!(h.dead_letter_delivered(9).await.unwrap().unwrap().status, Delivered);
        assert_eq!(h.dead_letter_action(9, Skip).await.unwrap(), Err(Refusal::WrongState(Delivered)));
        assert_eq!(h.dead_letter_delivered(10).await.unwrap(), None);
        let counts = log.reader().dead_letter_counts().unwrap();
        assert_eq!((counts.delivered, counts.open()), (1, 0));
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_respect_both_limits_and_list_dead_letters_as_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        log.handle().append(orders(10)).await.unwrap();
        let reader = log.reader();
        let size = reader.raw_event(1).unwrap().unwrap().len();
        let all = reader.sync_batch(0, 100, 1 << 20).unwrap();
        assert_eq!((all.first, all.last, all.seqs.len()), (1, 10, 10));
        assert_eq!(all.envelopes().next().unwrap(), reader.raw_event(1).unwrap().unwrap().as_slice());
        let by_count = reader.sync_batch(2, 3, 1 << 20).unwrap();
        assert_eq!(by_count.seqs, vec![3, 4, 5]);
        assert_eq!(by_count.prev_event_id, reader.event_id(2).unwrap(), "the chain names the event before");
        assert_eq!(all.prev_event_id, None, "nothing comes before the first event");
        let by_bytes = reader.sync_batch(0, 100, size * 2 + size / 2).unwrap();
        assert_eq!(by_bytes.seqs, vec![1, 2], "a third event would pass the byte limit");
        let alone = reader.sync_batch(0, 100, 10).unwrap();
        assert_eq!(alone.seqs, vec![1], "an event larger than the limit goes alone");
        log.handle().park_dead_letter(4, "X".into(), "r".into()).await.unwrap();
        log.handle().park_dead_letter(6, "X".into(), "r".into()).await.unwrap();
        let with_skips = reader.sync_batch(2, 5, 1 << 20).unwrap();
        assert_eq!((with_skips.first, with_skips.last), (3, 7));
        assert_eq!((&with_skips.seqs, &with_skips.skipped), (&vec![3, 5, 7], &vec![4, 6]));
        assert_eq!(with_skips.envelopes().len(), 3);
        let only_skipped = reader.sync_batch(3, 1, 1 << 20).unwrap();
        assert_eq!((only_skipped.first, only_skipped.last, only_skipped.seqs.len()), (4, 4, 0));
        assert!(reader.sync_batch(10, 100, 1 << 20).unwrap().is_empty());
        log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rebuild_neither_drops_nor_digests_the_sync_state() {
        use crate::projections::rebuild;
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        log.handle().append(orders(4)).await.unwrap();
        log.handle().set_sync_cursor(3).await.unwrap();
        log.handle().park_dead_letter(4, "X".into(), "r".into()).await.unwrap();
        log.close().await.unwrap();
        let opts = options(dir.path());
        let db = rebuild::open(&opts.path, &opts.site, 1 << 20).unwrap();
        let before = rebuild::digest(&db).unwrap();
        assert!(before.iter().all(|d| !d.table.starts_with("sync") && d.table != "meta"), "{before:?}");
        rebuild::rebuild(&db, &opts.site, |_, _| {}).unwrap();
        assert_eq!(rebuild::digest(&db).unwrap(), before);
        assert!(rebuild::verify(&db, &opts.site, |_, _| {}).unwrap().is_empty());
        drop(db);
        let log = open(dir.path());
        assert_eq!(log.reader().sync_cursor().unwrap(), 3);
        assert_eq!(log.reader().dead_letters().unwrap().len(), 1);
        log.close().await.unwrap();
    }
}
