//! The DICOM accept loop: at most `max_associations` at a time, each a tracked task.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::DicomContext;

/// Accepts associations until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<DicomContext>, tracker: TaskTracker) {
    let (limit, shutdown) = (ctx.config.max_associations, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "DICOM", move |stream, peer| {
        let ctx = ctx.clone();
        async move {
            ctx.metrics.dicom_associations_open.inc();
            super::association::run(stream, peer, ctx.clone()).await;
            ctx.metrics.dicom_associations_open.dec();
        }
    })
    .await;
}
