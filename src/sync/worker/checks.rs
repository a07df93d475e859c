//! The worker's history checks: before anything is sent after a start (and always after a
//! restore), on every `409`, and on every `200`, the event the hub holds where it stands is
//! compared with this log's ([`crate::sync::history`]). The same history: the cursor follows
//! the hub. Another history: the sync stops (`hub_diverged`, at ERROR, naming the first
//! differing sequence number), nothing is realigned or skipped, intake goes on, and the worker
//! waits for an operator: a restart checks again, `zenedge sync fork` starts a new epoch.

use super::super::batch::RawBatch;
use super::super::client::{Failure, FailureKind, Reported};
use super::super::cursor::{self, SyncEpoch};
use super::super::history::{self, Divergence, JudgeError, Verdict};
use super::super::state::ForkDone;
use super::super::wire::ForkRequest;
use super::{Step, StepError, Worker};

impl From<JudgeError> for StepError {
    fn from(e: JudgeError) -> Self {
        match e {
            JudgeError::Hub(f) => StepError::Hub(f),
            JudgeError::Local(m) => StepError::Local(m),
        }
    }
}

impl Worker {
    /// Compares where the hub says it stands with this log.
    fn judge(&mut self, reported: Reported) -> Result<Verdict, StepError> {
        let last = *self.committed.borrow();
        let (epoch, reader) = (self.epoch.epoch, self.reader.clone());
        let transport = &mut self.transport;
        let verdict = history::judge(
            reported,
            epoch,
            last,
            |seq| reader.event_id(seq).map_err(|e| format!("cannot read event {seq}: {e}")),
            |at| transport.position(epoch, Some(at)).map(|p| p.event_at.flatten()),
        )?;
        Ok(verdict)
    }

    /// The first exchange after a start (or a fork, a close of the breaker, an idle
    /// `position_check_interval`): the hub's position, checked against this log before any
    /// batch goes. A restore mark is cleared once the hub holds this history.
    pub(super) fn first_contact(&mut self) -> Result<Step, StepError> {
        let position = self.transport.position(self.epoch.epoch, None)?;
        if self.shutdown.is_cancelled() {
            return Ok(Step::Stop);
        }
        let reported = Reported { stored_through: position.stored_through, last_event: position.last_event };
        match self.judge(reported)? {
            Verdict::Same => {
                if self.shared.status().restored_at.is_some() {
                    self.block_on(cursor::clear_restore_mark(&self.log))
                        .map_err(|e| StepError::Local(format!("cannot clear the restore mark: {e}")))?;
                    self.shared.update(|s| s.restored_at = None);
                    tracing::info!(
                        hub_stored_through = reported.stored_through,
                        "the restored log and the hub hold the same history: sync goes on"
                    );
                }
                if reported.stored_through != self.cursor {
                    self.realign(reported.stored_through)?;
                }
                self.checked = true;
                self.confirmed_contact();
                Ok(Step::Progress)
            }
            Verdict::Ahead => Err(self.hub_ahead(reported.stored_through)),
            Verdict::Diverged(divergence) => Ok(self.halt(divergence)),
        }
    }

    /// `409`: the hub is elsewhere (or refused the chain). Realign to it if it holds this
    /// log's history and this log reaches that far.
    pub(super) fn on_conflict(&mut self, reported: Reported) -> Result<Step, StepError> {
        match self.judge(reported)? {
            Verdict::Same if reported.stored_through == self.cursor => Err(Failure::new(
                FailureKind::Protocol,
                format!(
                    "hub answered 409 with stored_through {}, which is where this edge already is",
                    reported.stored_through
                ),
            )
            .into()),
            Verdict::Same => {
                self.realign(reported.stored_through)?;
                self.confirmed_contact();
                Ok(Step::Progress)
            }
            Verdict::Ahead => Err(self.hub_ahead(reported.stored_through)),
            Verdict::Diverged(divergence) => Ok(self.halt(divergence)),
        }
    }

    /// After a `200`: the hub's last event must be this log's. `true` when it is not (the
    /// sync stopped).
    pub(super) fn stored_elsewhere(&mut self, raw: &RawBatch, reported: Reported) -> Result<bool, StepError> {
        let Some(Some(held)) = reported.last_event else { return Ok(false) };
        let ours = match raw.seqs.binary_search(&held.seq) {
            Ok(i) => raw.envelopes().nth(i).map(crate::log::head_event_id).transpose().map_err(StepError::Local)?,
            Err(_) => self.reader.event_id(held.seq).map_err(|e| StepError::Local(e.to_string()))?,
        };
        if ours == Some(held.event_id) {
            return Ok(false);
        }
        match self.judge(reported)? {
            Verdict::Diverged(divergence) => {
                self.halt(divergence);
                Ok(true)
            }
            _ => Err(Failure::new(
                FailureKind::Protocol,
                format!("hub answered 200 naming event {} at seq {}, which is not this log's", held.event_id, held.seq),
            )
            .into()),
        }
    }

    /// Moves the cursor to the hub's `stored_through` (same history, this log reaches it).
    fn realign(&mut self, at: u64) -> Result<(), StepError> {
        tracing::warn!(
            from = self.cursor,
            to = at,
            "the hub is elsewhere in this edge's log, on the same history; realigning the cursor to it"
        );
        self.advance(at)
    }

    fn hub_ahead(&self, at: u64) -> StepError {
        let last = *self.committed.borrow();
        Failure::new(
            FailureKind::HubAhead,
            format!(
                "the hub says it holds events up to {at} for this edge, but this log ends at {last}: \
                 the hub holds events this log does not have (a restored or replaced edge database?); \
                 this log's events are the hub's up to there, and nothing is sent until they differ or the hub moves"
            ),
        )
        .into()
    }

    /// The histories differ: stop sending, say so, and wait for an operator.
    fn halt(&mut self, divergence: Divergence) -> Step {
        let message = format!(
            "this edge's log and what the hub holds for it (epoch {}) are different histories from seq {}: \
             the hub stores other events under the same numbers. Sync stopped: nothing is realigned or skipped, \
             intake goes on. Run `zenedge sync fork` to keep both histories (the hub keeps its own, this edge's \
             events after seq {} go to a new epoch), or restore the right backup",
            divergence.epoch, divergence.first_differing_seq, divergence.fork_at
        );
        tracing::error!(
            kind = FailureKind::HubDiverged.as_str(),
            first_differing_seq = divergence.first_differing_seq,
            fork_at = divergence.fork_at,
            hub_stored_through = divergence.hub_stored_through,
            epoch = divergence.epoch,
            "{message}"
        );
        self.metrics.sync_failure(FailureKind::HubDiverged.as_str());
        self.shared.set_error(Failure::new(FailureKind::HubDiverged, message).to_string());
        // The hub holds this log's events up to the fork point (the bisection found them equal).
        let confirmed = self.cursor.min(divergence.fork_at);
        self.shared.update(|s| {
            s.diverged = Some(divergence);
            s.hub_confirmed = Some(confirmed);
        });
        (self.diverged, self.prepared, self.bisect) = (Some(divergence), None, None);
        Step::Progress
    }

    /// Stopped on a divergence: waits for shutdown or a fork request. Returns false on
    /// shutdown.
    pub(super) fn halted(&mut self) -> bool {
        let (shutdown, shared) = (self.shutdown.clone(), self.shared.clone());
        let woken = self.block_on(async move {
            tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = shared.woken() => true,
            }
        });
        if !woken {
            return false;
        }
        if self.shared.take_retry_request() {
            self.retry_hint = true;
        }
        if let Some(reply) = self.shared.take_fork_request() {
            let result = self.fork();
            if let Err(message) = &result {
                tracing::error!(error = %message, "the fork failed; sync stays stopped");
            }
            let _ = reply.send(result);
        }
        true
    }

    /// Starts a new epoch on the hub after the last common sequence number, then sends this
    /// log's events after it there.
    fn fork(&mut self) -> Result<ForkDone, String> {
        let divergence = self.diverged.ok_or("the sync has not diverged from the hub")?;
        let fork_at = divergence.fork_at;
        let fork_event_id = match fork_at {
            0 => None,
            seq => Some(
                self.reader
                    .event_id(seq)
                    .map_err(|e| format!("cannot read event {seq}: {e}"))?
                    .ok_or(format!("this log has no event {seq}"))?,
            ),
        };
        let request = ForkRequest { parent: self.epoch.epoch, fork_at, fork_event_id };
        let forked = self.transport.fork(&request).map_err(|f| f.to_string())?;
        if forked.fork_at != fork_at || forked.parent != request.parent {
            return Err(format!("the hub made epoch {} fork from another point: {forked:?}", forked.epoch));
        }
        let epoch = SyncEpoch { epoch: forked.epoch, fork_at };
        self.block_on(cursor::start_epoch(&self.log, epoch))
            .map_err(|e| format!("cannot record the new epoch: {e}"))?;
        self.epoch = epoch;
        self.persisted = fork_at;
        self.set_cursor(fork_at);
        (self.diverged, self.checked, self.prepared, self.bisect) = (None, false, None, None);
        self.shared.update(|s| {
            (s.diverged, s.epoch, s.fork_at, s.restored_at) = (None, epoch.epoch, fork_at, None);
            s.hub_confirmed = Some(fork_at);
        });
        self.shared.clear_error();
        let to_deliver = self.committed.borrow().saturating_sub(fork_at);
        tracing::warn!(
            epoch = epoch.epoch,
            parent = request.parent,
            fork_at,
            to_deliver,
            "sync forked: the hub keeps its history, this edge's events after the fork point go to a new epoch"
        );
        Ok(ForkDone { epoch: epoch.epoch, parent: request.parent, fork_at, to_deliver })
    }
}
