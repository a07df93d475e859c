//! One destination's loop: read a round after the cursor, send it over parallel
//! associations, record the answers with the cursor, or back off.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::commit::{self, Asked};
use super::lag::Lag;
use super::scu::{Item, Sent, Transient, send_group};
use super::{ForwardParts, cursor, dead_letters};
use crate::config::{Confirm, Destination};
use crate::events::{Event, ForwardStatus, InstanceForwarded, InstanceStored};
use crate::sync::{Breaker, backoff};

/// Events read per page while looking for a round's instances.
const PAGE: usize = 1024;

pub(super) struct Worker {
    index: usize,
    destination: Destination,
    parts: ForwardParts,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
    /// The writer's last committed sequence number: wakes the worker on new events.
    committed: watch::Receiver<u64>,
    breaker: Breaker,
    rng: fastrand::Rng,
    /// How far behind the destination is (from the first cursor read on).
    lag: Option<Lag>,
    /// The Storage Commitment requests asked for in this run.
    asked: Asked,
}

/// What to send for the `InstanceStored` at `seq`.
fn item(seq: u64, i: InstanceStored) -> Item {
    Item {
        seq,
        sop_class_uid: i.sop_class_uid,
        sop_instance_uid: i.sop_instance_uid,
        study_instance_uid: i.study_instance_uid,
        transfer_syntax_uid: i.transfer_syntax_uid,
        path: i.file_path.into(),
    }
}

/// An instance named in a commitment request.
fn commit_reference(sop_class_uid: String, sop_instance_uid: String) -> crate::dicom::commitment::Reference {
    crate::dicom::commitment::Reference { sop_class_uid, sop_instance_uid }
}

/// A round: the instances to send and the last event it covers.
struct Round {
    items: Vec<Item>,
    through: u64,
}

impl Worker {
    pub(super) fn new(
        index: usize,
        destination: Destination,
        parts: ForwardParts,
        runtime: tokio::runtime::Handle,
        stop: CancellationToken,
    ) -> Worker {
        let committed = parts.log.state.committed.subscribe();
        let breaker = Breaker::new(destination.breaker_failures, destination.breaker_open);
        let (rng, lag, asked) = (fastrand::Rng::new(), None, Asked::default());
        Worker { index, destination, parts, runtime, stop, committed, breaker, rng, lag, asked }
    }

    pub(super) fn run(mut self) {
        let name = self.destination.name.clone();
        tracing::info!(destination = %name, "forwarding started");
        self.count_letters();
        while !self.stop.is_cancelled() {
            if !self.wait_for_breaker() {
                break;
            }
            let after = match cursor::cursor(&self.parts.reader, &name) {
                Ok(after) => after,
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e, "cannot read the forwarding cursor");
                    if !self.sleep(Duration::from_secs(1)) {
                        break;
                    }
                    continue;
                }
            };
            if let Err(e) = self.resend_letters(after) {
                if self.stop.is_cancelled() || !self.failed(e) {
                    break;
                }
                continue;
            }
            let head = *self.committed.borrow();
            self.parts.shared.update(self.index, |s| (s.cursor, s.lag_events) = (after, head.saturating_sub(after)));
            self.measure_lag(after, head);
            if head <= after {
                self.count_letters();
                self.request_commitments();
                if !self.wait_for_events(after) {
                    break;
                }
                continue;
            }
            match self.round(after) {
                Ok(()) => self.succeeded(),
                Err(e) => {
                    if self.stop.is_cancelled() || !self.failed(e) {
                        break;
                    }
                }
            }
        }
        tracing::info!(destination = %name, "forwarding stopped");
    }

    /// Reads, sends and records one round after `after`.
    fn round(&mut self, after: u64) -> Result<(), Transient> {
        let round = self.read_round(after).map_err(|e| Transient(format!("reading the log: {e}")))?;
        self.deliver(&round.items, round.through)
    }

    /// Sends the dead letters an operator asked to retry (up to `batch` of them), recording
    /// the answers with the cursor left at `cursor`.
    fn resend_letters(&mut self, cursor: u64) -> Result<(), Transient> {
        let reader = &self.parts.reader;
        let read = |e: crate::log::ReadError| Transient(format!("reading the log: {e}"));
        let seqs = dead_letters::to_retry(reader, &self.destination.name).map_err(read)?;
        let mut items = Vec::new();
        for seq in seqs.into_iter().take(self.destination.batch) {
            if let Some(Event::InstanceStored(i)) = crate::events::get(reader, seq).map_err(read)?.map(|e| e.event) {
                items.push(item(seq, *i));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        tracing::info!(destination = %self.destination.name, instances = items.len(), "sending dead letters again, as an operator asked");
        let (sent, sends) = match self.send_in_flight(&items) {
            Ok(answers) => answers,
            // The association failed: parked again with the reason, so that an operator's
            // retry never holds up the rest of the destination's flow.
            Err(e) if !self.stop.is_cancelled() => {
                let reason = format!("sent again at an operator's request, but the association failed: {e}");
                (
                    items.iter().map(|_| Sent::Refused { status: None, reason: reason.clone() }).collect(),
                    vec![1; items.len()],
                )
            }
            Err(e) => return Err(e),
        };
        self.record(&items, sent, sends, cursor)
    }

    /// Sends `items` (a refused one again after a backoff, up to `refused_attempts` sends),
    /// then records every answer, parks what is still refused and moves the cursor to
    /// `through`, in one commit.
    fn deliver(&mut self, items: &[Item], through: u64) -> Result<(), Transient> {
        let (sent, sends) = self.send_in_flight(items)?;
        self.record(items, sent, sends, through)?;
        self.request_commitments();
        Ok(())
    }

    /// With `confirm = "commitment"`: asks the destination to commit every pending
    /// transaction not asked yet in this run or overdue ([`commit`]). A failure is logged; the
    /// transactions are asked again after `commitment_timeout`.
    fn request_commitments(&mut self) {
        if self.destination.confirm != Confirm::Commitment {
            return;
        }
        let (reader, name) = (&self.parts.reader, self.destination.name.as_str());
        let pending = match crate::projections::forward::pending_commitments(reader, name) {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(destination = %name, error = %e, "cannot read the pending Storage Commitment requests");
                return;
            }
        };
        self.parts.shared.update(self.index, |s| s.commitments_pending = pending.len() as u64);
        let uids: Vec<String> = pending.iter().map(|(uid, _)| uid.clone()).collect();
        let now = Instant::now();
        let due = self.asked.due(&uids, now, self.destination.commitment_timeout);
        let mut transactions = Vec::new();
        for (uid, row) in pending.into_iter().filter(|(uid, _)| due.contains(uid)) {
            if self.asked.was_asked(&uid) {
                tracing::warn!(destination = %name, transaction = %uid, "no Storage Commitment report within commitment_timeout; asking again");
            }
            let mut references = Vec::with_capacity(row.instances.len());
            for (sop_instance_uid, seq) in row.instances {
                if let Ok(Some(Event::InstanceStored(i))) = crate::events::get(reader, seq).map(|e| e.map(|e| e.event))
                {
                    references.push(commit_reference(i.sop_class_uid, sop_instance_uid));
                }
            }
            transactions.push((uid, references));
        }
        if transactions.is_empty() {
            return;
        }
        let answers = commit::request(&self.destination, &transactions);
        for (uid, _) in &transactions {
            self.asked.asked(uid, now);
        }
        match answers {
            Ok(answers) => {
                for ((uid, references), answer) in transactions.iter().zip(answers) {
                    match answer {
                        Ok(()) => {
                            tracing::info!(destination = %name, transaction = %uid, instances = references.len(), "Storage Commitment requested")
                        }
                        Err(e) => {
                            tracing::warn!(destination = %name, transaction = %uid, error = %e, "the archive refused a Storage Commitment request; asked again after commitment_timeout")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(destination = %name, error = %e, "Storage Commitment not requested; asked again after commitment_timeout")
            }
        }
    }

    /// [`Self::send_with_retries`], shown as in flight meanwhile.
    fn send_in_flight(&mut self, items: &[Item]) -> Result<(Vec<Sent>, Vec<u32>), Transient> {
        self.parts.shared.update(self.index, |s| s.in_flight = items.len() as u64);
        let sent = self.send_with_retries(items);
        self.parts.shared.update(self.index, |s| s.in_flight = 0);
        sent
    }

    /// Records the answers to `items` (each sent `sends` times), parking what was refused,
    /// with the cursor moved to `through`, in one commit.
    fn record(&mut self, items: &[Item], sent: Vec<Sent>, sends: Vec<u32>, through: u64) -> Result<(), Transient> {
        let confirmed_by_store = self.destination.confirm == Confirm::Store;
        // With commitment: one transaction per study of the round (asked for once recorded).
        let mut transactions: Vec<(String, String)> = Vec::new();
        let mut transaction_of = |study: &str| -> Option<String> {
            if self.destination.confirm != Confirm::Commitment {
                return None;
            }
            if let Some((_, uid)) = transactions.iter().find(|(s, _)| s == study) {
                return Some(uid.clone());
            }
            let uid = crate::dicom::commitment::new_transaction_uid();
            transactions.push((study.to_owned(), uid.clone()));
            Some(uid)
        };
        let mut answers = Vec::with_capacity(sent.len());
        let (mut stored, mut refused) = (0, 0);
        for ((item, answer), sends) in items.iter().zip(sent).zip(sends) {
            let (status, peer_status, answer) = match answer {
                Sent::Stored { status, comment } => {
                    stored += 1;
                    (ForwardStatus::Stored, Some(status), comment)
                }
                Sent::Refused { status, reason } => {
                    refused += 1;
                    tracing::warn!(destination = %self.destination.name, seq = item.seq, status, sends, %reason, "the archive refused an instance; parked as a dead letter");
                    (ForwardStatus::Refused, status, Some(reason))
                }
            };
            answers.push((
                InstanceForwarded {
                    destination: self.destination.name.clone(),
                    sop_instance_uid: item.sop_instance_uid.clone(),
                    study_instance_uid: item.study_instance_uid.clone(),
                    instance_seq: item.seq,
                    status,
                    peer_status,
                    answer,
                    confirmed: confirmed_by_store && status == ForwardStatus::Stored,
                    commitment_transaction_uid: if status == ForwardStatus::Stored {
                        transaction_of(&item.study_instance_uid)
                    } else {
                        None
                    },
                },
                sends,
            ));
        }
        let (log, name) = (self.parts.log.clone(), self.destination.name.clone());
        self.runtime
            .block_on(cursor::record_round(&log, name, answers, through))
            .map_err(|e| Transient(format!("recording the answers: {e}")))?;
        let metrics = &self.parts.metrics;
        metrics.forward_instance(&self.destination.name, "stored", stored);
        metrics.forward_instance(&self.destination.name, "refused", refused);
        self.parts.shared.update(self.index, |s| {
            s.cursor = through;
            s.stored_total += stored;
            s.refused_total += refused;
            if stored > 0 && confirmed_by_store {
                s.last_confirmed_at = Some(jiff::Timestamp::now());
            }
        });
        self.count_letters();
        Ok(())
    }

    /// [`Self::send`], then the refused instances again after a backoff until each was sent
    /// `refused_attempts` times or stored; the answers, and how often each was sent.
    fn send_with_retries(&mut self, items: &[Item]) -> Result<(Vec<Sent>, Vec<u32>), Transient> {
        let mut sent = self.send(items)?;
        let mut sends = vec![1u32; items.len()];
        for attempt in 1..self.destination.refused_attempts {
            let refused: Vec<usize> = (0..items.len()).filter(|&n| matches!(sent[n], Sent::Refused { .. })).collect();
            if refused.is_empty() {
                break;
            }
            let wait = backoff(&mut self.rng, self.destination.retry_base, self.destination.retry_cap, attempt);
            if !self.sleep(wait) {
                return Err(Transient("stopping".into()));
            }
            let again: Vec<Item> = refused.iter().map(|&n| items[n].clone()).collect();
            for (n, answer) in refused.into_iter().zip(self.send(&again)?) {
                (sent[n], sends[n]) = (answer, sends[n] + 1);
            }
        }
        Ok((sent, sends))
    }

    /// Measures how far behind the destination at `cursor` is, for its status and metrics.
    fn measure_lag(&mut self, cursor: u64, head: u64) {
        let (reader, name) = (&self.parts.reader, &self.destination.name);
        let lag = self.lag.get_or_insert_with(|| Lag::new(cursor));
        match lag.behind(reader, cursor, head, jiff::Timestamp::now()) {
            Ok(b) => {
                self.parts.metrics.forward_lag(name, b.instances, b.bytes, b.seconds);
                self.parts.shared.update(self.index, |s| {
                    (s.lag_instances, s.lag_bytes, s.lag_seconds) = (b.instances, b.bytes, b.seconds)
                });
            }
            Err(e) => tracing::warn!(destination = %name, error = %e, "cannot measure the forwarding lag"),
        }
    }

    /// Counts the destination's dead letters again, for its status and metrics.
    fn count_letters(&self) {
        let name = &self.destination.name;
        match dead_letters::counts(&self.parts.reader, name) {
            Ok(counts) => {
                let metrics = &self.parts.metrics;
                metrics.forward_dead_letters(name, "parked", counts.parked);
                metrics.forward_dead_letters(name, "retry", counts.retry);
                metrics.forward_dead_letters(name, "skipped", counts.skipped);
                metrics.forward_dead_letters(name, "delivered", counts.delivered);
                self.parts.shared.update(self.index, |s| s.dead_letters = counts);
            }
            Err(e) => tracing::warn!(destination = %name, error = %e, "cannot count the forwarding dead letters"),
        }
    }

    /// Up to `batch` instances after `after`, and the last event the round covers.
    fn read_round(&self, after: u64) -> Result<Round, crate::log::ReadError> {
        let mut round = Round { items: Vec::new(), through: after };
        loop {
            let page = crate::events::after(&self.parts.reader, round.through, PAGE)?;
            for envelope in page.items {
                if let Event::InstanceStored(i) = envelope.event {
                    if round.items.len() == self.destination.batch {
                        return Ok(round);
                    }
                    round.items.push(item(envelope.seq, *i));
                }
                round.through = envelope.seq;
            }
            if page.next.is_none() || round.items.len() == self.destination.batch {
                return Ok(round);
            }
        }
    }

    /// Sends `items`: grouped by study (log order kept), the groups spread over the
    /// destination's associations. Any association's failure fails the round.
    fn send(&self, items: &[Item]) -> Result<Vec<Sent>, Transient> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match groups.iter_mut().find(|g| items[g[0]].study_instance_uid == item.study_instance_uid) {
                Some(group) => group.push(n),
                None => groups.push(vec![n]),
            }
        }
        let lanes = self.destination.associations.min(groups.len()).max(1);
        let mut per_lane: Vec<Vec<Vec<usize>>> = vec![Vec::new(); lanes];
        for (n, group) in groups.into_iter().enumerate() {
            per_lane[n % lanes].push(group);
        }
        let state_dir = &self.parts.state_dir;
        let destination = &self.destination;
        let mut answers: Vec<Option<Sent>> = vec![None; items.len()];
        let results: Vec<Result<Vec<(usize, Sent)>, Transient>> = std::thread::scope(|scope| {
            let handles: Vec<_> = per_lane
                .iter()
                .map(|lane| {
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for group in lane {
                            let group_items: Vec<Item> = group.iter().map(|&n| items[n].clone()).collect();
                            let sent = send_group(destination, state_dir, &group_items)?;
                            out.extend(group.iter().copied().zip(sent));
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Transient("a forwarding association panicked".into()))))
                .collect()
        });
        for result in results {
            for (n, sent) in result? {
                answers[n] = Some(sent);
            }
        }
        answers.into_iter().map(|a| a.ok_or_else(|| Transient("an instance got no answer".into()))).collect()
    }

    fn succeeded(&mut self) {
        if let Some(previous) = self.breaker.on_success() {
            tracing::info!(destination = %self.destination.name, from = previous.as_str(), "forwarding circuit breaker closed");
        }
        self.parts.shared.update(self.index, |s| {
            (s.breaker, s.consecutive_failures, s.last_error) = ("closed", 0, None);
        });
    }

    /// A failed round: counted, logged, backed off. Returns false on shutdown.
    fn failed(&mut self, e: Transient) -> bool {
        let opened = self.breaker.on_failure(Instant::now());
        let failures = self.breaker.failures();
        tracing::warn!(destination = %self.destination.name, failures, error = %e, "forwarding round failed; sent again after a backoff");
        if opened {
            tracing::warn!(destination = %self.destination.name, open_for = ?self.destination.breaker_open, "forwarding circuit breaker opened");
        }
        self.parts.metrics.forward_failure(&self.destination.name);
        let state = self.breaker.state().as_str();
        self.parts.shared.update(self.index, |s| {
            s.breaker = state;
            s.consecutive_failures = failures;
            s.failures_total += 1;
            s.last_error = Some(e.0.clone());
        });
        let wait = backoff(&mut self.rng, self.destination.retry_base, self.destination.retry_cap, failures);
        self.sleep(wait)
    }

    /// While the breaker is open, waits for the end of its open period, then half-opens it.
    fn wait_for_breaker(&mut self) -> bool {
        let Some(until) = self.breaker.open_until() else { return true };
        if !self.sleep(until.saturating_duration_since(Instant::now())) {
            return false;
        }
        if self.breaker.half_open() {
            self.parts.shared.update(self.index, |s| s.breaker = "half_open");
        }
        true
    }

    fn sleep(&self, duration: Duration) -> bool {
        let stop = self.stop.clone();
        self.runtime.block_on(async move {
            tokio::select! {
                _ = stop.cancelled() => false,
                _ = tokio::time::sleep(duration) => true,
            }
        })
    }

    /// Waits for an event after `after` (or a minute, to look again). False on shutdown.
    fn wait_for_events(&mut self, after: u64) -> bool {
        let stop = self.stop.clone();
        let mut committed = self.committed.clone();
        let (shared, index) = (self.parts.shared.clone(), self.index);
        self.runtime.block_on(async move {
            tokio::select! {
                _ = stop.cancelled() => false,
                _ = committed.wait_for(|&last| last > after) => true,
                _ = shared.wake[index].notified() => true,
                _ = tokio::time::sleep(Duration::from_secs(60)) => true,
            }
        })
    }
}
