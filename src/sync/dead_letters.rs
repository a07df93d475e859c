//! Dead letters: events the hub refused on their own (after bisecting), parked so that the
//! rest of the log keeps flowing.
//!
//! `sync_dead_letters`: `u64 seq → msgpack` [`DeadLetter`]. While `parked`, `retry` or
//! `skipped` an event travels in batches as a skipped sequence number; `retry` also asks the
//! worker to send it once more on its own. Not a projection: it records what the hub answered,
//! so `zenedge rebuild` and `verify` neither drop nor digest it. Every write goes through the
//! log writer (its own small transaction, committed durably before the caller hears back);
//! reads are short read transactions.

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::log::{AppendError, Applier, LogHandle, LogReader, ReadError, Storage, TableSpec, Txn, corrupt, decode_row};

/// `seq → msgpack DeadLetter`.
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("sync_dead_letters");

/// The dead letters' table for the file's schema: created when the first letter is parked.
pub fn table_spec() -> TableSpec {
    TableSpec::of(&DEAD_LETTERS).on_first_write()
}

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

type Applied<O> = Result<Result<O, AppendError>, redb::Error>;

/// Parks `seq` with the hub's `reason`, or parks it again (one more attempt) after a refused
/// redelivery. A letter an operator skipped meanwhile stays skipped.
pub async fn park<A: Applier>(
    log: &LogHandle<A>,
    seq: u64,
    event_type: String,
    reason: String,
) -> Result<DeadLetter, AppendError> {
    log.request((seq, event_type, reason), apply_park::<A>).await
}

/// Marks `seq` delivered: the hub stored its redelivery.
pub async fn delivered<A: Applier>(log: &LogHandle<A>, seq: u64) -> Result<Option<DeadLetter>, AppendError> {
    log.request(seq, apply_delivered::<A>).await
}

/// Applies an operator's `action` to dead letter `seq`.
pub async fn act<A: Applier>(
    log: &LogHandle<A>,
    seq: u64,
    action: DeadLetterAction,
) -> Result<Result<DeadLetter, Refusal>, AppendError> {
    log.request((seq, action), apply_action::<A>).await
}

fn read_letter(table: &redb::Table<'_, u64, &[u8]>, seq: u64) -> Result<Option<DeadLetter>, redb::Error> {
    match table.get(seq)? {
        Some(v) => rmp_serde::from_slice(v.value()).map(Some).map_err(|e| corrupt("sync_dead_letters", e)),
        None => Ok(None),
    }
}

fn write_letter<A: Applier>(t: &mut Txn<'_, '_, A>, seq: u64, letter: &DeadLetter) -> Result<(), redb::Error> {
    let bytes = rmp_serde::to_vec_named(letter).map_err(|e| corrupt("sync_dead_letters", e))?;
    t.txn().open_table(DEAD_LETTERS)?.insert(seq, bytes.as_slice())?;
    t.dirty = true;
    Ok(())
}

fn existing<A: Applier>(t: &Txn<'_, '_, A>, seq: u64) -> Result<Option<DeadLetter>, redb::Error> {
    let table = t.txn().open_table(DEAD_LETTERS)?;
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

/// Every dead letter, by sequence number.
pub fn all(reader: &LogReader) -> Result<Vec<(u64, DeadLetter)>, ReadError> {
    let txn = reader.begin_read()?;
    let Some(table) = table(&txn)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for row in table.iter().storage()? {
        let (k, v) = row.storage()?;
        out.push((k.value(), decode_row("sync_dead_letters", v.value())?));
    }
    Ok(out)
}

/// One dead letter.
pub fn get(reader: &LogReader, seq: u64) -> Result<Option<DeadLetter>, ReadError> {
    let txn = reader.begin_read()?;
    let Some(table) = table(&txn)? else { return Ok(None) };
    match table.get(seq).storage()? {
        Some(v) => Ok(Some(decode_row("sync_dead_letters", v.value())?)),
        None => Ok(None),
    }
}

/// Dead letters by status.
pub fn counts(reader: &LogReader) -> Result<DeadLetterCounts, ReadError> {
    let mut counts = DeadLetterCounts::default();
    for (_, letter) in all(reader)? {
        *match letter.status {
            DeadLetterStatus::Parked => &mut counts.parked,
            DeadLetterStatus::Retry => &mut counts.retry,
            DeadLetterStatus::Skipped => &mut counts.skipped,
            DeadLetterStatus::Delivered => &mut counts.delivered,
        } += 1;
    }
    Ok(counts)
}

/// The dead-letter table, `None` while no letter was ever parked (it is created then).
pub(super) fn table(txn: &redb::ReadTransaction) -> Result<Option<redb::ReadOnlyTable<u64, &'static [u8]>>, ReadError> {
    match txn.open_table(DEAD_LETTERS) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(ReadError::Storage(e.into())),
    }
}

#[cfg(test)]
#[path = "dead_letters_tests.rs"]
mod tests;
