//! The DICOM accept loop: a semaphore caps associations, each is a tracked task.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::DicomContext;

/// Accepts associations until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<DicomContext>, tracker: TaskTracker) {
    let limit = Arc::new(Semaphore::new(ctx.config.max_associations));
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = ctx.shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = ctx.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "DICOM accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        tracker.spawn(async move {
            ctx.metrics.dicom_associations_open.inc();
            super::association::run(stream, peer, ctx.clone()).await;
            ctx.metrics.dicom_associations_open.dec();
            drop(permit);
        });
    }
    tracing::debug!("DICOM listener stopped accepting");
}
