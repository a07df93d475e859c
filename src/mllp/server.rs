//! The accept loops: a semaphore caps connections ([`crate::net::accept_loop`]), each
//! connection is a tracked task ([`super::connection`]), and the loop ends when shutdown is
//! signalled.
//!
//! The plain listener closes a connection from outside `mllp.allow_from` at once (a security
//! alert says so); the TLS listener runs the handshake first ([`crate::tls::Handshaker`]: a
//! client certificate of `tls.client_ca` is required) and hands the connection on with the
//! peer's identity.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::connection::Connection;
use super::context::MllpContext;
use crate::security::{AlertKind, Facts};
use crate::tls::Handshaker;

/// Accepts plain connections until `ctx.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, ctx: Arc<MllpContext>, tracker: TaskTracker) {
    let (limit, shutdown) = (ctx.config.max_connections, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "MLLP", move |stream, peer| {
        let ctx = ctx.clone();
        async move {
            if !allowed(&ctx, peer) {
                return;
            }
            crate::net::tune(&stream);
            counted(&ctx, Connection::new(stream, peer, None, &ctx).run()).await;
        }
    })
    .await;
}

/// Accepts TLS connections until `ctx.shutdown` is cancelled.
pub async fn serve_tls(listener: TcpListener, ctx: Arc<MllpContext>, tracker: TaskTracker, tls: Handshaker) {
    let (limit, shutdown) = (ctx.config.max_connections, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "MLLP over TLS", move |stream, peer| {
        let (ctx, tls) = (ctx.clone(), tls.clone());
        async move {
            let Some((stream, identity)) = tls.accept(stream, peer).await else { return };
            counted(&ctx, Connection::new(stream, peer, identity, &ctx).run()).await;
        }
    })
    .await;
}

/// Whether `peer` may connect to the plain listener (`mllp.allow_from`); else an alert.
fn allowed(ctx: &MllpContext, peer: SocketAddr) -> bool {
    let from = &ctx.config.allow_from;
    let ip = peer.ip().to_canonical();
    if from.is_empty() || from.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    let facts = Facts::connection("mllp", peer, "source address not in mllp.allow_from: connection closed");
    ctx.alerts.alert(AlertKind::SourceAddressRefused, facts);
    false
}

/// Runs a connection, counted in the connection metrics.
async fn counted(ctx: &MllpContext, connection: impl std::future::Future<Output = ()>) {
    ctx.metrics.mllp_connections_total.inc();
    ctx.metrics.mllp_connections_open.inc();
    connection.await;
    ctx.metrics.mllp_connections_open.dec();
}
