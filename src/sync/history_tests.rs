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
    let err = judge(Reported { stored_through: 3, last_event: None }, 0, 10, |_| Ok(None), |_| Ok(None)).unwrap_err();
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
