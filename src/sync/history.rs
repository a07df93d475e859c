//! Do this edge's log and the hub hold the same history, or only the same length?
//!
//! Sequence numbers say nothing about *which* events they number: a backup restored on the
//! edge numbers its new events from where the backup ended, while the hub may already hold
//! other events under those numbers. So wherever the hub says it stands (`200`, `409`, or its
//! position read at start), the worker compares the `event_id` the hub holds there with its
//! own event at that sequence number ([`judge`]):
//!
//! * equal: the same history as far as both reach. The hub is behind (restored from an older
//!   copy) or ahead (a lost `200`) on *this* history; the cursor may go where the hub is.
//! * the hub reaches beyond this log: the hub's event at the end of this log is compared
//!   instead; equal means this log is a prefix of the hub's (`hub_ahead`).
//! * different: the histories forked. The first sequence number at which the hub stores
//!   another event is found by bisection over the hub's `event_at` (the last event it stores
//!   at or below a number): each probe halves the range, so a log of a million events costs
//!   about twenty small requests. Every event after a fork differs (event ids are random
//!   UUIDs), so "differs" is monotone and bisection finds the first one.

use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

use super::client::{Failure, FailureKind, Reported};
use super::wire::EventRef;

/// Where this log and the hub's copy part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// The epoch of the edge's stream on the hub that holds the other history.
    pub epoch: u64,
    /// The first sequence number at which the hub stores another event than this log.
    pub first_differing_seq: u64,
    /// The last sequence number at which the hub stores the same event as this log (0: none):
    /// a fork continues the history from here.
    pub fork_at: u64,
    /// Where the hub stood when the difference was found.
    pub hub_stored_through: u64,
    pub detected_at: Timestamp,
}

/// The comparison's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The same events as far as both reach: the cursor may go to the hub's position (which
    /// is within this log).
    Same,
    /// The hub holds more events than this log, and this log is a prefix of them.
    Ahead,
    /// Different histories.
    Diverged(Divergence),
}

/// Why the comparison could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeError {
    /// The hub could not be asked, or did not answer per the contract.
    Hub(Failure),
    /// This edge's own log could not be read.
    Local(String),
}

impl From<Failure> for JudgeError {
    fn from(f: Failure) -> Self {
        JudgeError::Hub(f)
    }
}

/// Compares where the hub says it stands (`reported`, in `epoch`) with this log, which ends
/// at `last`. `edge(seq)` is this log's event id at `seq`; `hub(at)` the last event the hub
/// stores at or below `at`.
pub fn judge(
    reported: Reported,
    epoch: u64,
    last: u64,
    mut edge: impl FnMut(u64) -> Result<Option<Uuid>, String>,
    mut hub: impl FnMut(u64) -> Result<Option<EventRef>, Failure>,
) -> Result<Verdict, JudgeError> {
    let through = reported.stored_through;
    if through == 0 {
        // The hub holds nothing of this epoch: nothing to compare.
        return Ok(Verdict::Same);
    }
    let Some(last_event) = reported.last_event else {
        return Err(Failure::new(
            FailureKind::Protocol,
            format!(
                "the hub says it holds this edge's events through {through} but not which event it holds there \
                 (a hub older than this edge?): this edge cannot tell whether both hold the same history, so it \
                 does not realign"
            ),
        )
        .into());
    };
    let same = if through <= last { Verdict::Same } else { Verdict::Ahead };
    let top = if through <= last { last_event } else { probe(&mut hub, last)? };
    let Some(top) = top else { return Ok(same) };
    if top.seq > through.min(last) {
        return Err(protocol(format!("the hub names event {} as its last at or below {}", top.seq, through.min(last))));
    }
    if edge_id(&mut edge, top.seq)? == top.event_id {
        return Ok(same);
    }
    let (first_differing_seq, fork_at) = bisect(top.seq, &mut edge, &mut hub)?;
    Ok(Verdict::Diverged(Divergence {
        epoch,
        first_differing_seq,
        fork_at,
        hub_stored_through: through,
        detected_at: Timestamp::now(),
    }))
}

/// The first hub-stored sequence number at or below `differs` (known to differ) whose event
/// is not this log's, and the last one below it whose event is (0 if none).
fn bisect(
    differs: u64,
    edge: &mut impl FnMut(u64) -> Result<Option<Uuid>, String>,
    hub: &mut impl FnMut(u64) -> Result<Option<EventRef>, Failure>,
) -> Result<(u64, u64), JudgeError> {
    // Every event the hub stores at or below `lo` is this log's, the one at `hi` is not.
    let (mut lo, mut hi, mut common) = (0, differs, 0);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match probe(hub, mid)? {
            Some(e) if e.seq > lo => {
                if edge_id(edge, e.seq)? == e.event_id {
                    (lo, common) = (mid, e.seq);
                } else {
                    hi = e.seq;
                }
            }
            // Nothing stored in (lo, mid]: nothing there differs.
            _ => lo = mid,
        }
    }
    Ok((hi, common))
}

/// The hub's last event at or below `at`, checked to be so.
fn probe(
    hub: &mut impl FnMut(u64) -> Result<Option<EventRef>, Failure>,
    at: u64,
) -> Result<Option<EventRef>, JudgeError> {
    match hub(at)? {
        Some(e) if e.seq > at => {
            Err(protocol(format!("asked for its last event at or below {at}, the hub named {}", e.seq)))
        }
        found => Ok(found),
    }
}

fn edge_id(edge: &mut impl FnMut(u64) -> Result<Option<Uuid>, String>, seq: u64) -> Result<Uuid, JudgeError> {
    edge(seq).map_err(JudgeError::Local)?.ok_or_else(|| JudgeError::Local(format!("this log has no event {seq}")))
}

fn protocol(message: String) -> JudgeError {
    JudgeError::Hub(Failure::new(FailureKind::Protocol, message))
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
