//! Epochs of an edge's stream: how the hub keeps two histories of one edge side by side.
//!
//! Epoch 0 is the stream every edge writes from its first batch, stored under the edge id
//! itself (the layout of the first hub release, unchanged). An operator starts epoch `n > 0`
//! with `zenedge sync fork` after the edge's log stopped matching what the hub holds (a
//! restored backup took new data under sequence numbers the hub already held with other
//! events). Epoch `n` is stored under the stream key `"{edge_id}#{n}"` (edge ids cannot hold
//! `#`) in the same tables as epoch 0, and described by a row of the `epochs` table: its
//! `parent` epoch and `fork_at`, the last sequence number it shares with the parent.
//!
//! An epoch's **history** is its lineage: the root's events up to the first fork point, the
//! next epoch's after it, and so on down to the epoch's own events after its `fork_at`. Every
//! question about "the event at seq N of epoch n" (the chain check, `last_event`,
//! `?at=`, redelivery of a skipped event, reading back) is answered along that lineage, so an
//! epoch starts with `stored_through = fork_at` and its first batch is `fork_at + 1`.

use std::borrow::Cow;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::HubError;
use crate::sync::wire::EventRef;

/// `(edge_id, epoch) → msgpack EpochRow`, for epochs above 0.
pub(super) const EPOCHS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("epochs");

/// An epoch above 0, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct EpochRow {
    pub parent: u64,
    pub fork_at: u64,
    /// The event the edge holds at `fork_at` (checked against the parent at creation).
    pub fork_event_id: Option<uuid::Uuid>,
    pub created_at: jiff::Timestamp,
}

/// The key under which epoch `epoch` of `edge_id` is stored in `edges`, `events`, `skipped`.
pub fn stream_key(edge_id: &str, epoch: u64) -> Cow<'_, str> {
    match epoch {
        0 => Cow::Borrowed(edge_id),
        n => Cow::Owned(format!("{edge_id}#{n}")),
    }
}

/// One piece of an epoch's history: the sequence numbers `after + 1 ..= through` of a
/// stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Segment {
    pub epoch: u64,
    pub stream: String,
    /// The fork point of this epoch (0 for epoch 0): its own events are above it.
    pub after: u64,
    /// The last sequence number of this epoch in the history asked for (a child's fork point,
    /// or `u64::MAX` for the epoch asked for).
    pub through: u64,
}

impl Segment {
    /// Whether `seq` belongs to this segment.
    pub fn holds(&self, seq: u64) -> bool {
        self.after < seq && seq <= self.through
    }
}

pub(super) fn storage(e: impl Into<redb::Error>) -> HubError {
    HubError::Storage(Box::new(e.into()))
}

/// The stored row of epoch `epoch` (> 0), if the hub has it.
pub(super) fn row(
    epochs: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    edge_id: &str,
    epoch: u64,
) -> Result<Option<EpochRow>, HubError> {
    let Some(value) = epochs.get((edge_id, epoch)).map_err(storage)? else { return Ok(None) };
    rmp_serde::from_slice(value.value())
        .map(Some)
        .map_err(|e| storage(redb::StorageError::Corrupted(format!("epochs row of {edge_id} epoch {epoch}: {e}"))))
}

/// Every epoch row of `edge_id`, ascending.
pub(super) fn rows(
    epochs: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    edge_id: &str,
) -> Result<Vec<(u64, EpochRow)>, HubError> {
    let mut out = Vec::new();
    for entry in epochs.range((edge_id, 1)..=(edge_id, u64::MAX)).map_err(storage)? {
        let (key, value) = entry.map_err(storage)?;
        let epoch = key.value().1;
        let row = rmp_serde::from_slice(value.value()).map_err(|e| {
            storage(redb::StorageError::Corrupted(format!("epochs row of {edge_id} epoch {epoch}: {e}")))
        })?;
        out.push((epoch, row));
    }
    Ok(out)
}

/// The history of `epoch`, root first; `None` when the hub has no such epoch.
pub(super) fn lineage(
    epochs: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    edge_id: &str,
    epoch: u64,
) -> Result<Option<Vec<Segment>>, HubError> {
    let mut segments = Vec::new();
    let (mut current, mut through) = (epoch, u64::MAX);
    loop {
        if current == 0 {
            segments.push(Segment { epoch: 0, stream: edge_id.to_owned(), after: 0, through });
            segments.reverse();
            return Ok(Some(segments));
        }
        let Some(row) = row(epochs, edge_id, current)? else { return Ok(None) };
        if row.parent >= current {
            return Err(storage(redb::StorageError::Corrupted(format!(
                "epoch {current} of {edge_id} names parent {} (parents come before their children)",
                row.parent
            ))));
        }
        segments.push(Segment {
            epoch: current,
            stream: stream_key(edge_id, current).into_owned(),
            after: row.fork_at,
            through,
        });
        through = row.fork_at;
        current = row.parent;
    }
}

/// The last event stored at or below `seq` in the history `segments`.
pub(super) fn event_at_or_below(
    events: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    segments: &[Segment],
    seq: u64,
) -> Result<Option<EventRef>, HubError> {
    for segment in segments.iter().rev() {
        let upper = segment.through.min(seq);
        if upper <= segment.after {
            continue;
        }
        let mut range = events
            .range((segment.stream.as_str(), segment.after + 1)..=(segment.stream.as_str(), upper))
            .map_err(storage)?;
        if let Some(entry) = range.next_back() {
            let (key, value) = entry.map_err(storage)?;
            return Ok(Some(EventRef { seq: key.value().1, event_id: event_id(value.value())? }));
        }
    }
    Ok(None)
}

/// The segment of `segments` that holds `seq`.
pub(super) fn owner(segments: &[Segment], seq: u64) -> Option<&Segment> {
    segments.iter().find(|s| s.holds(seq))
}

/// The `event_id` of a stored envelope (checked on receipt, so a failure means a damaged file).
fn event_id(bytes: &[u8]) -> Result<uuid::Uuid, HubError> {
    #[derive(Deserialize)]
    struct Head {
        event_id: uuid::Uuid,
    }
    rmp_serde::from_slice::<Head>(bytes)
        .map(|h| h.event_id)
        .map_err(|e| storage(redb::StorageError::Corrupted(format!("a stored envelope has no event id: {e}"))))
}

#[cfg(test)]
#[path = "epochs_tests.rs"]
mod tests;
