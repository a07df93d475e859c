//! The next batch for the hub, read in one read transaction: the envelopes after the cursor as
//! they were written (decompressed from their stored form, not decoded), and the dead letters in
//! their range named, not copied.

use super::dead_letters::DeadLetter;
use crate::log::{EVENTS, LogReader, ReadError, Storage, decode_row, head_event_id, value};

/// The events after the cursor that make the next batch: their envelopes back to back (one
/// allocation, no decoding), and the sequence numbers held back as dead letters.
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

/// The next batch after `after`, in one read transaction: at most `max_events`
/// sequence numbers and `max_bytes` of stored envelopes (a single larger event goes
/// alone). Dead letters that travel as skipped are listed, not copied.
pub fn read(reader: &LogReader, after: u64, max_events: usize, max_bytes: usize) -> Result<RawBatch, ReadError> {
    let mut batch = RawBatch::default();
    if after == u64::MAX || max_events == 0 {
        return Ok(batch);
    }
    let txn = reader.begin_read()?;
    let window_end = after.saturating_add(max_events as u64);
    let mut skipped = Vec::new();
    if let Some(table) = super::dead_letters::table(&txn)? {
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
        // The hub gets the envelope as written, whatever its stored form.
        let bytes = value::decode(seq, v.value()).map_err(|e| ReadError::Decode { seq, source: Box::new(e.fault) })?;
        if !batch.seqs.is_empty() && batch.bytes.len() + bytes.len() > max_bytes {
            break;
        }
        batch.push(seq, &bytes);
        if batch.bytes.len() >= max_bytes {
            break;
        }
    }
    Ok(batch)
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
