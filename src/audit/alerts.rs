//! Security alerts into the trail: [`AlertTrail`] is the recorder the composition root gives
//! [`crate::security::Alerts`]; [`write_alerts`] is the task that takes what it queued to the
//! log writer, every record waiting at once in one request.
//!
//! The queue is bounded (a flood of refused handshakes must not grow memory without end):
//! when it is full a record is dropped, counted in `zenedge_audit_dropped_total` and logged
//! at WARN (the alert itself is still logged and counted).

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{kinds, trail};
use crate::log::{Applier, LogHandle};
use crate::security::{AlertKind, AlertRecorder, Facts};
use crate::telemetry::Metrics;

/// Records queued at most (beyond it, alerts are dropped from the trail).
pub const QUEUE_DEPTH: usize = 4096;
/// Records in one request to the writer at most.
const BATCH: usize = 256;

type Queued = (super::AuditRecord, oneshot::Sender<()>);

/// The recorder of security alerts.
#[derive(Debug)]
pub struct AlertTrail {
    tx: mpsc::Sender<Queued>,
    edge_id: String,
    metrics: Arc<Metrics>,
}

/// The recorder, and the queue [`write_alerts`] empties.
pub fn alert_trail(edge_id: &str, metrics: Arc<Metrics>) -> (Arc<AlertTrail>, mpsc::Receiver<Queued>) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    (Arc::new(AlertTrail { tx, edge_id: edge_id.to_owned(), metrics }), rx)
}

impl AlertRecorder for AlertTrail {
    fn record(&self, kind: AlertKind, facts: &Facts) -> Option<oneshot::Receiver<()>> {
        let record = kinds::security_alert(&self.edge_id, kind, facts, Timestamp::now());
        let (done, durable) = oneshot::channel();
        match self.tx.try_send((record, done)) {
            Ok(()) => Some(durable),
            Err(_) => {
                self.metrics.audit_dropped.inc();
                tracing::warn!(
                    alert = kind.as_str(),
                    "audit queue full: security alert not recorded in the audit trail"
                );
                None
            }
        }
    }
}

/// Writes queued alert records through the writer until `stop`, then what is still queued.
pub async fn write_alerts<A: Applier>(mut rx: mpsc::Receiver<Queued>, log: LogHandle<A>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = stop.cancelled() => break,
        };
        let Some(first) = first else { return };
        write_batch(&mut rx, &log, first).await;
    }
    rx.close();
    while let Ok(first) = rx.try_recv() {
        write_batch(&mut rx, &log, first).await;
    }
}

async fn write_batch<A: Applier>(rx: &mut mpsc::Receiver<Queued>, log: &LogHandle<A>, first: Queued) {
    let mut batch = vec![first];
    while batch.len() < BATCH {
        match rx.try_recv() {
            Ok(queued) => batch.push(queued),
            Err(_) => break,
        }
    }
    let (records, waiting): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let count = records.len();
    match trail::record(log, records).await {
        Ok(()) => waiting.into_iter().for_each(|w| {
            let _ = w.send(());
        }),
        Err(e) => tracing::warn!(records = count, error = %e, "security alerts not recorded in the audit trail"),
    }
}
