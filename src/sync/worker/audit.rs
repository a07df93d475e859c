//! The worker's audit pages: the audit trail ([`crate::audit`]) goes to the hub beside the
//! events ([`crate::sync::wire_audit`]), from its own durable cursor
//! ([`crate::sync::audit_cursor`]).
//!
//! * **After the events.** With the events caught up, every waiting page goes; while batches
//!   flow, one page at most every [`AUDIT_EVERY`] between two batches, so the trail keeps up
//!   under load without halving the event sync.
//! * **Never in the events' way.** A failed page (network, `5xx`, a refusal) is logged at WARN
//!   and tried again after its own backoff; it neither counts toward the circuit breaker nor
//!   delays a batch. A hub that does not know the path (`404`/`405`: older than the contract)
//!   is logged at WARN once and asked again every `position_check_interval`.
//! * **At least once.** The cursor moves only after the hub's `200` for the page, through the
//!   log writer; a lost answer sends the page again, and the hub stores nothing twice.

use std::time::{Duration, Instant};

use super::super::audit_cursor;
use super::super::breaker;
use super::super::client::{AuditOutcome, AuditPage};
use super::super::wire_audit;
use super::Worker;

/// Records per page at most (and `batch_max_bytes` of them).
const PAGE_RECORDS: usize = 1000;

/// While event batches flow, a page goes at most this often between them.
const AUDIT_EVERY: Duration = Duration::from_secs(1);

/// While idle, the trail is looked at this often for new records (API reads and alerts add
/// records without adding events).
pub(super) const AUDIT_POLL: Duration = Duration::from_secs(1);

/// The audit pages' own state.
#[derive(Debug)]
pub(super) struct AuditSync {
    /// The hub holds every record up to here (`None`: not read from the log yet).
    cursor: Option<u64>,
    /// No page before this (backoff after a failure; a hub without the path).
    not_before: Instant,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// When the last page went.
    last_sent: Option<Instant>,
    /// The hub was found not to take audit records (warned once until it does).
    unsupported: bool,
}

impl AuditSync {
    pub(super) fn new() -> AuditSync {
        AuditSync { cursor: None, not_before: Instant::now(), failures: 0, last_sent: None, unsupported: false }
    }

    /// How long an idle wait may last before the trail is looked at again.
    pub(super) fn poll(&self) -> Duration {
        self.not_before.saturating_duration_since(Instant::now()).max(AUDIT_POLL)
    }
}

impl Worker {
    /// Sends a page of audit records if one is waiting and due. `idle`: the events are caught
    /// up (else at most one page per [`AUDIT_EVERY`]). Returns whether more pages may wait.
    pub(super) fn audit_step(&mut self, idle: bool) -> bool {
        let now = Instant::now();
        if self.shutdown.is_cancelled() || now < self.audit.not_before {
            return false;
        }
        if !idle && self.audit.last_sent.is_some_and(|t| now.duration_since(t) < AUDIT_EVERY) {
            return false;
        }
        match self.send_audit_page() {
            Ok(more) => more,
            Err(message) => {
                self.audit.failures = self.audit.failures.saturating_add(1);
                let wait =
                    breaker::backoff(&mut self.rng, self.config.retry_base, self.config.retry_cap, self.audit.failures);
                tracing::warn!(failures = self.audit.failures, error = %message, "audit records not sent to the hub");
                self.audit.not_before = Instant::now() + wait;
                false
            }
        }
    }

    /// One page after the cursor; `Ok(false)` when none is waiting or the hub takes none.
    fn send_audit_page(&mut self) -> Result<bool, String> {
        let cursor = match self.audit.cursor {
            Some(cursor) => cursor,
            None => audit_cursor::cursor(&self.reader).map_err(|e| format!("cannot read the audit cursor: {e}"))?,
        };
        self.audit.cursor = Some(cursor);
        let rows = crate::audit::page_raw(&self.reader, cursor, PAGE_RECORDS, self.config.batch_max_bytes)
            .map_err(|e| format!("cannot read the audit trail: {e}"))?;
        let (Some(first), Some(last)) = (rows.first().map(|r| r.0), rows.last().map(|r| r.0)) else {
            return Ok(false);
        };
        let page = AuditPage {
            first,
            last,
            records: rows.len(),
            body: wire_audit::encode_audit_page(rows.iter().map(|(_, bytes)| bytes.as_slice())),
        };
        self.audit.last_sent = Some(Instant::now());
        match self.transport.send_audit(&page) {
            AuditOutcome::Stored(stored) if stored.stored_through == last => {}
            AuditOutcome::Stored(stored) => {
                return Err(format!(
                    "hub answered 200 for audit records {first}..={last} with stored_through {}",
                    stored.stored_through
                ));
            }
            AuditOutcome::Unsupported(why) => {
                if !self.audit.unsupported {
                    tracing::warn!(
                        error = %why,
                        "the hub takes no audit records (older than this edge?): events sync on, audit records are \
                         kept and offered again every position_check_interval"
                    );
                }
                self.audit.unsupported = true;
                self.audit.not_before = Instant::now() + self.config.position_check_interval;
                return Ok(false);
            }
            AuditOutcome::Failure(failure) => return Err(failure.to_string()),
        }
        self.block_on(audit_cursor::set_cursor(&self.log, last))
            .map_err(|e| format!("cannot record the audit cursor {last}: {e}"))?;
        if std::mem::take(&mut self.audit.unsupported) {
            tracing::info!("the hub takes audit records now");
        }
        self.audit.cursor = Some(last);
        self.audit.failures = 0;
        self.metrics.sync_audit_records.inc_by(page.records as u64);
        Ok(true)
    }
}
