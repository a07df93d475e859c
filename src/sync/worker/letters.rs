//! The worker's dead letters: narrowing a refused batch down to the event the hub refuses,
//! parking it, and sending it again when an operator asks.

use super::super::batch::RawBatch;
use super::super::client::{Batch, Failure, FailureKind, Outcome};
use super::super::dead_letters::{self, DeadLetterStatus};
use super::super::wire;
use super::{Bisect, GZIP_LEVEL, Step, StepError, Worker};

impl Worker {
    /// The hub refused `raw`: halve the batch, or park its only event.
    pub(super) fn narrow(&mut self, raw: &RawBatch, reason: String) -> Result<Step, StepError> {
        let range = raw.range_len();
        if range > 1 {
            let end = self.bisect.map_or(raw.last, |b| b.end.max(raw.last));
            let limit = (range / 2).max(1);
            tracing::warn!(
                first = raw.first,
                last = raw.last,
                reason = %reason,
                next_batch = limit,
                "hub refused a batch; narrowing it down to the refused event"
            );
            self.bisect = Some(Bisect { end, limit });
            return Ok(Step::Progress);
        }
        let Some(bytes) = raw.envelopes().next() else {
            return Err(Failure::new(
                FailureKind::Protocol,
                format!("hub refused a batch holding only skipped event {}: {reason}", raw.first),
            )
            .into());
        };
        let seq = raw.first;
        let event_type = event_type(bytes);
        let letter = self.block_on(dead_letters::park(&self.log, seq, event_type.clone(), reason.clone()));
        letter.map_err(|e| StepError::Local(format!("cannot park event {seq} as a dead letter: {e}")))?;
        tracing::error!(
            seq,
            event_type = %event_type,
            reason = %reason,
            "the hub refused this event: parked as a dead letter, sync goes on without it; \
             retry or skip it with POST /api/v1/dead-letters/{seq}/retry or /skip"
        );
        // The refused range held this event; the rest of it may go at full size again.
        self.bisect = None;
        self.refresh_dead_letter_gauge();
        Ok(Step::Progress)
    }

    /// The first dead letter waiting for redelivery that the hub has counted as skipped
    /// (at or below the cursor).
    pub(super) fn redelivery_due(&mut self) -> Result<Option<u64>, StepError> {
        if !self.retry_hint {
            return Ok(None);
        }
        let letters =
            dead_letters::all(&self.reader).map_err(|e| StepError::Local(format!("cannot read dead letters: {e}")))?;
        let mut waiting = letters.iter().filter(|(_, l)| l.status == DeadLetterStatus::Retry).peekable();
        if waiting.peek().is_none() {
            self.retry_hint = false;
            return Ok(None);
        }
        Ok(waiting.map(|(seq, _)| *seq).find(|seq| *seq <= self.cursor))
    }

    /// Sends dead letter `seq` once more, on its own.
    pub(super) fn redeliver(&mut self, seq: u64) -> Result<Step, StepError> {
        let bytes = self
            .reader
            .raw_event(seq)
            .map_err(|e| StepError::Local(format!("cannot read event {seq}: {e}")))?
            .ok_or_else(|| StepError::Local(format!("dead letter {seq} is not in the log")))?;
        let batch = Batch {
            epoch: self.epoch.epoch,
            prev_event_id: None,
            first: seq,
            last: seq,
            skipped: Vec::new(),
            redelivery: true,
            events: 1,
            body: wire::encode_batch(std::iter::once(bytes.as_slice()), GZIP_LEVEL),
        };
        let Some(outcome) = self.send(&batch) else { return Ok(Step::Stop) };
        self.settle()?;
        match outcome {
            Outcome::Stored(_) => {
                self.confirmed_contact();
                self.block_on(dead_letters::delivered(&self.log, seq))
                    .map_err(|e| StepError::Local(format!("cannot record dead letter {seq} as delivered: {e}")))?;
                tracing::info!(seq, "dead letter redelivered: the hub stored it");
            }
            Outcome::Refused(reason) => {
                let letter = self
                    .block_on(dead_letters::park(&self.log, seq, event_type(&bytes), reason.clone()))
                    .map_err(|e| StepError::Local(format!("cannot park event {seq} again: {e}")))?;
                tracing::error!(seq, attempts = letter.attempts, reason = %reason, "the hub refused the redelivered event again; parked");
            }
            Outcome::Conflict(reported) => return self.on_conflict(reported),
            Outcome::Failure(failure) => return Err(failure.into()),
        }
        self.refresh_dead_letter_gauge();
        Ok(Step::Progress)
    }

    pub(super) fn refresh_dead_letter_gauge(&self) {
        if let Ok(counts) = dead_letters::counts(&self.reader) {
            self.metrics.sync_dead_letters.set(counts.open() as i64);
        }
    }
}

/// `event_type` of a stored envelope (for a dead letter).
pub(super) fn event_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Head {
        event_type: String,
    }
    rmp_serde::from_slice::<Head>(bytes).map(|h| h.event_type).unwrap_or_else(|_| "unknown".into())
}
