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
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A log of `len` events, ids `1..=len`, except from `fork` on (ids offset by 1000).
    fn log(len: u64, fork: Option<u64>) -> BTreeMap<u64, Uuid> {
        (1..=len)
            .map(|s| (s, Uuid::from_u128(u128::from(if fork.is_some_and(|f| s >= f) { s + 1000 } else { s }))))
            .collect()
    }

    struct Case {
        edge: BTreeMap<u64, Uuid>,
        hub: BTreeMap<u64, Uuid>,
        probes: usize,
    }

    impl Case {
        fn judge(&mut self, through: u64) -> Result<Verdict, JudgeError> {
            let last_event = self.hub.range(..=through).next_back().map(|(s, id)| EventRef { seq: *s, event_id: *id });
            let last = self.edge.keys().next_back().copied().unwrap_or(0);
            let (edge, hub, probes) = (&self.edge, &self.hub, &mut self.probes);
            judge(
                Reported::new(through, last_event),
                0,
                last,
                |seq| Ok(edge.get(&seq).copied()),
                |at| {
                    *probes += 1;
                    Ok(hub.range(..=at).next_back().map(|(s, id)| EventRef { seq: *s, event_id: *id }))
                },
            )
        }
    }

    fn diverged(verdict: Verdict) -> (u64, u64) {
        match verdict {
            Verdict::Diverged(d) => (d.first_differing_seq, d.fork_at),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_same_history_is_same_whether_the_hub_is_behind_or_level() {
        let mut case = Case { edge: log(20, None), hub: log(12, None), probes: 0 };
        assert_eq!(case.judge(12).unwrap(), Verdict::Same);
        assert_eq!(case.probes, 0, "the answer's last_event was enough");
        case.hub = log(20, None);
        assert_eq!(case.judge(20).unwrap(), Verdict::Same);
    }

    #[test]
    fn a_log_that_is_a_prefix_of_the_hub_s_is_behind_it() {
        let mut case = Case { edge: log(5, None), hub: log(15, None), probes: 0 };
        assert_eq!(case.judge(15).unwrap(), Verdict::Ahead);
        assert_eq!(case.probes, 1, "one probe at the end of this log");
    }

    #[test]
    fn a_restored_log_that_went_on_is_found_to_differ_from_its_first_new_event() {
        // The trial: the hub holds 1..=15 of one history; the restored log 1..=5, then 6..=25
        // of its own.
        let mut case = Case { edge: log(25, Some(6)), hub: log(15, None), probes: 0 };
        assert_eq!(diverged(case.judge(15).unwrap()), (6, 5));
        assert!(case.probes <= 5, "{} probes", case.probes);
        // Still shorter than the hub: found too.
        case.edge = log(8, Some(6));
        assert_eq!(diverged(case.judge(15).unwrap()), (6, 5));
    }

    #[test]
    fn the_first_difference_is_found_at_every_fork_point_with_log_many_probes() {
        for fork in 1..=64 {
            let mut case = Case { edge: log(64, Some(fork)), hub: log(64, None), probes: 0 };
            assert_eq!(diverged(case.judge(64).unwrap()), (fork, fork - 1), "fork at {fork}");
            assert!(case.probes <= 7, "fork {fork}: {} probes", case.probes);
        }
        let mut big = Case { edge: log(1_000_000, Some(959)), hub: log(1_000_000, None), probes: 0 };
        assert_eq!(diverged(big.judge(1_000_000).unwrap()), (959, 958));
        assert!(big.probes <= 21, "{} probes", big.probes);
    }

    #[test]
    fn sequence_numbers_the_hub_skipped_are_not_taken_for_differences() {
        let mut hub = log(30, None);
        for skipped in [4, 5, 6, 20] {
            hub.remove(&skipped);
        }
        let mut case = Case { edge: log(30, Some(7)), hub, probes: 0 };
        assert_eq!(diverged(case.judge(30).unwrap()), (7, 3), "the last common stored event is 3");
    }

    #[test]
    fn a_hub_that_does_not_name_its_event_gets_no_realignment() {
        let err =
            judge(Reported { stored_through: 3, last_event: None }, 0, 10, |_| Ok(None), |_| Ok(None)).unwrap_err();
        let JudgeError::Hub(failure) = err else { panic!("{err:?}") };
        assert_eq!(failure.kind, FailureKind::Protocol);
        assert!(failure.message.contains("does not realign"), "{failure}");
    }

    #[test]
    fn a_hub_that_holds_nothing_is_the_same_history() {
        assert_eq!(judge(Reported::new(0, None), 0, 10, |_| Ok(None), |_| Ok(None)).unwrap(), Verdict::Same);
        let older = Reported { stored_through: 0, last_event: None };
        assert_eq!(judge(older, 0, 10, |_| Ok(None), |_| Ok(None)).unwrap(), Verdict::Same, "even from an older hub");
    }
}
