//! Upstream sync: the edge's log, delivered to the hub at least once and in order, stored
//! there exactly once per `(edge_id, seq)` (invariant 5). The contract on the wire is in
//! [`wire`].
//!
//! # Guarantees
//!
//! * **In order, nothing left out.** Batches are contiguous ranges `first..=last` of the
//!   log, sent one at a time, starting right after the cursor. Every sequence number is
//!   either in a body or, if it is a dead letter, named in the `zenedge-skipped` header.
//! * **The cursor moves only on the hub's word.** It lives in redb (`meta["sync_cursor"]`)
//!   and is written, through the log writer, only after a `200` (to its `stored_through`)
//!   or a `409` naming where the hub is. It is therefore never ahead of the hub. A crash or
//!   a lost answer resends a batch the hub may already hold; the hub dedupes on
//!   `(edge_id, seq)`. A cursor write that fails sends the worker back to the last durable
//!   cursor.
//! * **Same history, not only same length.** The hub names the event it holds where it
//!   stands; the cursor follows the hub only if that is this log's event ([`history`]).
//!   Another history (a restored backup that took new data while the hub already held other
//!   events under those numbers) stops the sync at `hub_diverged`: nothing realigned or
//!   skipped, intake going on, until an operator forks (`zenedge sync fork`) or restarts.
//! * **Ingest never waits for the hub.** The worker only reads the log (one short read
//!   transaction per batch) and writes a few small rows per batch through the writer.
//!
//! # The loop
//!
//! A dedicated thread, `zenedge-sync` (ureq is blocking), runs the worker loop: read up to
//! `batch_max_events` events and `batch_max_bytes` of stored envelopes after the cursor (a
//! larger single event goes alone), lingering up to `linger` for a fuller batch while fewer
//! are waiting; gzip the stored bytes as they are (no decoding, no re-encoding); send; act
//! on the answer. With nothing to send it sleeps on the writer's commit notifications (and
//! wakes after `position_check_interval` to ask the hub where it stands).
//!
//! While a batch is in flight, a helper thread reads and compresses the next one, and the
//! cursor write after a `200` overlaps the next exchange: the edge's share of the work runs
//! beside the hub's instead of between its answers (figures in `BENCHMARKS.md`). Every
//! wait (linger, backoff, breaker) ends at once on shutdown; a request in
//! flight cannot be interrupted, so shutdown waits for the thread at most
//! [`STOP_GRACE`] and then leaves it behind.
//!
//! # Answers
//!
//! * `200`: the cursor moves to `stored_through` (which must be the batch's last).
//! * First, after every start (before any batch), after every close of the circuit breaker,
//!   and after every `position_check_interval` spent idle: the hub's position (`GET`), checked
//!   like a `409` (`404`: the hub holds nothing of this edge, so everything is sent again). A
//!   hub restored from an older backup is so refilled from the cursor it names without waiting
//!   for the next event. A restore mark (`zenedge restore`) is cleared once the hub holds the
//!   same history.
//! * `200`: the hub's `last_event` must be this log's (else `hub_diverged`).
//! * `409`: the hub is elsewhere — ahead after the edge lost a `200`, behind after the hub
//!   was restored — or refused the chain (the event before the batch differs). The edge
//!   compares the hub's event there with its own: the same, and the cursor realigns to the
//!   hub's `stored_through` if this log reaches that far; the same as far as this log goes but
//!   the hub holds more: failure `hub_ahead`, logged at ERROR, retried with backoff (an
//!   operator must look); different: `hub_diverged`, logged at ERROR with the first differing
//!   sequence number (found by bisection), and the worker sends nothing more until an
//!   operator runs `zenedge sync fork` (a new epoch on the hub from the last common sequence
//!   number; the hub keeps both histories) or restarts the daemon (which checks again).
//! * `400`/`413`/`422`, a refused batch: **bisect**. The batch shrinks to half its length
//!   and stays that short (even after halves are stored) until the cursor passes the end
//!   of the refused range, halving again on each refusal. When a single event is refused
//!   it is **parked** as a dead letter with the hub's reason, and the batches that follow
//!   go at full size again with that sequence number in `zenedge-skipped`.
//! * Anything else (network, TLS, timeouts, `5xx`, `401`/`403`/`404`, unreadable answers):
//!   **backoff** with full jitter — a random wait in `0 ..= min(retry_cap, retry_base ·
//!   2^(n-1))` after the `n`-th failure in a row — and a **circuit breaker**: after
//!   `breaker_failures` failures in a row it opens for `breaker_open` (no tries), then
//!   half-opens: one probe batch closes it or opens it again. Opening is logged at WARN,
//!   closing at INFO; each failure at WARN with its kind and message, never event contents.
//!
//! # Dead letters
//!
//! `sync_dead_letters` in redb: `seq → {event_type, reason, status, attempts, parked_at,
//! updated_at}`. `parked`: the hub refused it, an operator must decide. Through the API an
//! operator sets `retry` (the worker sends that one event again, `zenedge-redelivery: 1`,
//! once the hub counted it as skipped: `200` makes it `delivered`, another refusal parks it
//! again with one more attempt) or `skipped` (the hub keeps it as skipped). While any letter
//! is `parked` or `retry`, `/readyz` says `"degraded": true` (and stays 200: intake is fine).
//!
//! # What is in redb
//!
//! The cursor, the epoch and the restore mark ([`cursor`]) and the dead letters
//! ([`dead_letters`]); none is a projection, so `zenedge rebuild` and `verify`
//! leave them alone. Counters, the breaker's state, a divergence and the cursor the hub
//! confirmed in this process are in memory ([`SyncShared`]) and start afresh with the process.

pub mod audit_cursor;
pub mod batch;
mod breaker;
pub mod client;
pub mod cursor;
pub mod dead_letters;
pub mod history;
pub mod state;
pub mod tls;
pub mod wire;
pub mod wire_audit;
mod worker;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use batch::RawBatch;
pub use breaker::{Breaker, BreakerState, backoff, ceiling};
pub use client::{AuditOutcome, AuditPage, Batch, Failure, FailureKind, HttpTransport, Outcome, Reported, Transport};
pub use cursor::SyncEpoch;
pub use dead_letters::{DeadLetter, DeadLetterAction, DeadLetterCounts, DeadLetterStatus, Refusal};
pub use history::Divergence;
pub use state::{ForkDone, SyncReport, SyncShared, SyncStatus};
pub use worker::WorkerParts;

/// The tables the sync keeps besides rows of `meta`, for the file's schema.
pub fn tables() -> Vec<crate::log::TableSpec> {
    vec![dead_letters::table_spec()]
}

/// How long shutdown waits for the sync thread (a request in flight cannot be interrupted).
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The running sync thread.
#[derive(Debug)]
pub struct SyncWorker {
    thread: std::thread::JoinHandle<()>,
    shutdown: CancellationToken,
    /// Closed when the thread's loop returned.
    done: tokio::sync::oneshot::Receiver<()>,
}

/// Starts the worker on the `zenedge-sync` thread. Call from within the tokio runtime: the
/// worker waits on the log's commit notifications through it.
pub fn spawn(parts: WorkerParts, shutdown: CancellationToken) -> std::io::Result<SyncWorker> {
    let runtime = tokio::runtime::Handle::current();
    let (done_tx, done) = tokio::sync::oneshot::channel::<()>();
    let worker = worker::Worker::new(parts, runtime, shutdown.clone());
    let thread = std::thread::Builder::new().name("zenedge-sync".into()).spawn(move || {
        let _done = done_tx;
        worker.run();
    })?;
    Ok(SyncWorker { thread, shutdown, done })
}

impl SyncWorker {
    /// Stops the worker: every wait ends at once; a request in flight is waited for up to
    /// `grace`, then the thread is left to finish on its own.
    /// Returns whether the thread finished in time.
    pub async fn stop(self, grace: Duration) -> bool {
        self.shutdown.cancel();
        let SyncWorker { thread, done, .. } = self;
        if tokio::time::timeout(grace, done).await.is_ok() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            true
        } else {
            tracing::warn!(?grace, "the sync thread is still waiting for the hub; leaving it behind");
            false
        }
    }

    /// The thread has finished.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}
