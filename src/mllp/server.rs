//! The accept loop: a semaphore caps connections ([`crate::net::accept_loop`]), each
//! connection is a tracked task ([`super::connection`]), and the loop ends when shutdown is
//! signalled.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::connection::Connection;
use super::context::MllpContext;

/// Accepts connections until `ctx.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, ctx: Arc<MllpContext>, tracker: TaskTracker) {
    let (limit, shutdown) = (ctx.config.max_connections, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "MLLP", move |stream, peer| {
        let ctx = ctx.clone();
        async move {
            ctx.metrics.mllp_connections_total.inc();
            ctx.metrics.mllp_connections_open.inc();
            Connection::new(stream, peer, &ctx).run().await;
            ctx.metrics.mllp_connections_open.dec();
        }
    })
    .await;
}
