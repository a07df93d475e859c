//! What a store answers, whichever store it is: positions, the outcome of a batch, of a
//! redelivery and of a fork. Both stores ([`super::store`] on redb, [`super::pg`] on
//! PostgreSQL) return these, so the routes decide the HTTP answer in one place.

use crate::sync::wire::{EventRef, Forked};

/// Where the hub is in one epoch: what it states in every answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubPosition {
    /// Every sequence number up to this one is stored or skipped in the epoch's history.
    pub stored_through: u64,
    /// The last event stored at or below `stored_through`.
    pub last_event: Option<EventRef>,
}

/// A batch's range and its link to what precedes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    pub first: u64,
    pub last: u64,
    /// The edge's event at `first - 1`, when it said.
    pub prev_event_id: Option<uuid::Uuid>,
}

/// The result of a store's `append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The batch is durable; the stream now ends at `stored_through`.
    Stored(HubPosition),
    /// The batch does not start right after `stored_through`: nothing was stored.
    OutOfOrder(HubPosition),
    /// The hub holds another event than the batch's predecessor at `seq` (`first - 1`):
    /// the edge's history is not this epoch's. Nothing was stored.
    ChainBroken { position: HubPosition, seq: u64, held: uuid::Uuid },
    /// The epoch does not exist.
    NoEpoch,
}

/// The result of a store's `redeliver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivered {
    /// The skipped event is now stored.
    Stored(HubPosition),
    /// The event was stored already: nothing changed.
    AlreadyStored(HubPosition),
    /// The sequence number was never skipped (or lies beyond `stored_through`).
    NotSkipped(HubPosition),
    /// The epoch does not exist.
    NoEpoch,
}

/// The result of a store's `fork`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForkOutcome {
    /// A new epoch.
    Created(Forked),
    /// An epoch with this parent, fork point and event already existed: it is the answer.
    Existing(Forked),
    /// The parent epoch does not exist.
    NoParent,
    /// The fork point lies beyond what the parent holds.
    BeyondParent { stored_through: u64 },
    /// The parent holds another event at the fork point.
    EventDiffers { held: Option<EventRef> },
}

/// One event of an epoch's history as read back: its seq, the epoch whose stream holds it,
/// and its bytes as received.
pub type HistoryItem = (u64, u64, Vec<u8>);
