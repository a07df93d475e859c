//! Forwarding's dead letters: instances a destination refused (a failure status, no context for
//! their transfer syntax, a file that cannot be read) after `refused_attempts` sends, parked so
//! that the rest of the log keeps flowing to that destination.
//!
//! `forward_dead_letters`: `(destination, instance seq) → msgpack` [`ForwardLetter`]. A letter
//! is written in the same transaction as the round's `InstanceForwarded` answers and cursor
//! move ([`super::cursor`]): parked with the refusal, delivered once a later send is stored.
//! An operator retries a letter (the worker sends it once more on its own, outside the
//! cursor's order, and records the answer like any other) or skips it (nobody asks for it any
//! more); either action commits together with its audit record. A skipped letter is still not
//! confirmed: retention keeps its file while any required destination has not confirmed it.
//!
//! Not a projection: it records what the destination answered and what operators decided, so
//! `zenedge rebuild` and `verify` neither drop nor digest it (the statuses and their names are
//! the sync's, [`DeadLetterStatus`]).

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::audit::AuditRecord;
use crate::events::{ForwardStatus, InstanceForwarded};
use crate::log::{AppendError, LogHandle, LogReader, ReadError, Storage, TableSpec, Txn, corrupt, decode_row};
use crate::projections::Projections;
pub use crate::sync::dead_letters::{DeadLetterAction, DeadLetterStatus, Refusal};

/// The table's key: (destination, instance seq).
type Key = (&'static str, u64);

/// `(destination, instance seq) → msgpack ForwardLetter`.
const LETTERS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("forward_dead_letters");

/// The table for the file's schema: created when the first letter is parked.
pub fn table_spec() -> TableSpec {
    TableSpec::of(&LETTERS).on_first_write()
}

/// An instance a destination refused, as stored in `forward_dead_letters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardLetter {
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    /// The destination's status code of its last refusal, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_status: Option<u16>,
    /// The destination's words (or ours) for its last refusal.
    pub reason: String,
    pub status: DeadLetterStatus,
    /// Refused rounds so far: 1 when first parked, one more per refused retry.
    pub attempts: u32,
    /// Sends the destination refused, over all those rounds (up to `refused_attempts` each).
    #[serde(default)]
    pub sends: u32,
    pub parked_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A letter with its key, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub destination: String,
    /// The `InstanceStored` event of the refused version.
    pub instance_seq: u64,
    #[serde(flatten)]
    pub letter: ForwardLetter,
}

/// Letters of one destination by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LetterCounts {
    pub parked: u64,
    pub retry: u64,
    pub skipped: u64,
    pub delivered: u64,
}

impl LetterCounts {
    /// Parked or waiting for a resend: an operator must look.
    pub fn open(&self) -> u64 {
        self.parked + self.retry
    }
}

type Applied<O> = Result<Result<O, AppendError>, redb::Error>;

fn read_letter(
    table: &impl ReadableTable<Key, &'static [u8]>,
    destination: &str,
    seq: u64,
) -> Result<Option<ForwardLetter>, redb::Error> {
    match table.get((destination, seq))? {
        Some(v) => rmp_serde::from_slice(v.value()).map(Some).map_err(|e| corrupt("forward_dead_letters", e)),
        None => Ok(None),
    }
}

fn write_letter(
    t: &mut Txn<'_, '_, Projections>,
    destination: &str,
    seq: u64,
    letter: &ForwardLetter,
) -> Result<(), redb::Error> {
    let bytes = rmp_serde::to_vec_named(letter).map_err(|e| corrupt("forward_dead_letters", e))?;
    t.txn().open_table(LETTERS)?.insert((destination, seq), bytes.as_slice())?;
    t.dirty = true;
    Ok(())
}

fn existing(t: &Txn<'_, '_, Projections>, destination: &str, seq: u64) -> Result<Option<ForwardLetter>, redb::Error> {
    let table = t.txn().open_table(LETTERS)?;
    read_letter(&table, destination, seq)
}

/// In the round's transaction (`sends`: how often the instance was sent this round): a refused answer parks its instance (or parks it again, one
/// more attempt; a letter an operator skipped meanwhile stays skipped); a stored answer
/// delivers an existing letter.
pub(super) fn record_answer(
    t: &mut Txn<'_, '_, Projections>,
    answer: &InstanceForwarded,
    sends: u32,
) -> Result<(), redb::Error> {
    let (destination, seq, now) = (answer.destination.as_str(), answer.instance_seq, t.recorded_at);
    let old = existing(t, destination, seq)?;
    let letter = match (answer.status, old) {
        (ForwardStatus::Stored, None) => return Ok(()),
        (ForwardStatus::Stored, Some(old)) => {
            ForwardLetter { status: DeadLetterStatus::Delivered, updated_at: now, ..old }
        }
        (ForwardStatus::Refused, Some(old)) => ForwardLetter {
            peer_status: answer.peer_status,
            reason: answer.answer.clone().unwrap_or_default(),
            status: if old.status == DeadLetterStatus::Skipped { old.status } else { DeadLetterStatus::Parked },
            attempts: old.attempts + 1,
            sends: old.sends + sends,
            updated_at: now,
            ..old
        },
        (ForwardStatus::Refused, None) => ForwardLetter {
            sop_instance_uid: answer.sop_instance_uid.clone(),
            study_instance_uid: answer.study_instance_uid.clone(),
            peer_status: answer.peer_status,
            reason: answer.answer.clone().unwrap_or_default(),
            status: DeadLetterStatus::Parked,
            attempts: 1,
            sends,
            parked_at: now,
            updated_at: now,
        },
    };
    write_letter(t, destination, seq, &letter)
}

/// Applies an operator's `action` to `destination`'s letter for `seq`, and commits `audit`
/// (built from the letter as it stands) in the same transaction; returns once durable.
pub async fn act(
    log: &LogHandle<Projections>,
    destination: String,
    seq: u64,
    action: DeadLetterAction,
    audit: AuditOf,
) -> Result<Result<ForwardLetter, Refusal>, AppendError> {
    log.request((destination, seq, action, audit), apply_action).await
}

/// Builds the audit record of an operator's action from the letter it changed, at the time
/// the transaction records.
pub type AuditOf = Box<dyn FnOnce(&ForwardLetter, Timestamp) -> AuditRecord + Send>;

fn apply_action(
    t: &mut Txn<'_, '_, Projections>,
    (destination, seq, action, audit): (String, u64, DeadLetterAction, AuditOf),
) -> Applied<Result<ForwardLetter, Refusal>> {
    use DeadLetterStatus::*;
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    let Some(old) = existing(t, &destination, seq)? else { return Ok(Ok(Err(Refusal::NotFound))) };
    let status = match (action, old.status) {
        (DeadLetterAction::Retry, Parked | Skipped) => Retry,
        (DeadLetterAction::Skip, Parked | Retry) => Skipped,
        (_, current) => return Ok(Ok(Err(Refusal::WrongState(current)))),
    };
    let letter = ForwardLetter { status, updated_at: t.recorded_at, ..old };
    write_letter(t, &destination, seq, &letter)?;
    crate::audit::append(t, vec![audit(&letter, t.recorded_at)])?;
    Ok(Ok(Ok(letter)))
}

/// Every letter, by destination and sequence number.
pub fn all(reader: &LogReader) -> Result<Vec<Listed>, ReadError> {
    let txn = reader.begin_read()?;
    let Some(table) = table(&txn)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for row in table.iter().storage()? {
        let (k, v) = row.storage()?;
        let (destination, instance_seq) = k.value();
        let letter = decode_row("forward_dead_letters", v.value())?;
        out.push(Listed { destination: destination.to_owned(), instance_seq, letter });
    }
    Ok(out)
}

/// `destination`'s letters an operator asked to send again (instance seqs, oldest first).
pub fn to_retry(reader: &LogReader, destination: &str) -> Result<Vec<u64>, ReadError> {
    Ok(of(reader, destination)?
        .into_iter()
        .filter(|(_, l)| l.status == DeadLetterStatus::Retry)
        .map(|(s, _)| s)
        .collect())
}

/// `destination`'s letters by status.
pub fn counts(reader: &LogReader, destination: &str) -> Result<LetterCounts, ReadError> {
    let mut counts = LetterCounts::default();
    for (_, letter) in of(reader, destination)? {
        *match letter.status {
            DeadLetterStatus::Parked => &mut counts.parked,
            DeadLetterStatus::Retry => &mut counts.retry,
            DeadLetterStatus::Skipped => &mut counts.skipped,
            DeadLetterStatus::Delivered => &mut counts.delivered,
        } += 1;
    }
    Ok(counts)
}

/// `destination`'s letters by instance seq.
fn of(reader: &LogReader, destination: &str) -> Result<Vec<(u64, ForwardLetter)>, ReadError> {
    let txn = reader.begin_read()?;
    let Some(table) = table(&txn)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for row in table.range((destination, 0)..=(destination, u64::MAX)).storage()? {
        let (k, v) = row.storage()?;
        out.push((k.value().1, decode_row("forward_dead_letters", v.value())?));
    }
    Ok(out)
}

/// The table, `None` while no letter was ever parked (it is created then).
fn table(txn: &redb::ReadTransaction) -> Result<Option<redb::ReadOnlyTable<Key, &'static [u8]>>, ReadError> {
    match txn.open_table(LETTERS) {
        Ok(table) => Ok(Some(table)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(ReadError::Storage(e.into())),
    }
}
