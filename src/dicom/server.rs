//! The DICOM accept loops: at most `max_associations` at a time (plain and TLS each), each
//! association a tracked task. The TLS listener runs the handshake first
//! ([`crate::tls::Handshaker`]: a client certificate of `tls.client_ca` is required) and hands
//! the association the peer's identity, which negotiation compares with the calling AE
//! entries that name a certificate.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use super::DicomContext;
use crate::tls::Handshaker;

/// Accepts plain associations until shutdown.
pub async fn serve(listener: TcpListener, ctx: Arc<DicomContext>, tracker: TaskTracker) {
    let (limit, shutdown) = (ctx.config.max_associations, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "DICOM", move |stream, peer| {
        let ctx = ctx.clone();
        async move {
            crate::net::tune(&stream);
            ctx.metrics.dicom_associations_open.inc();
            super::association::run(stream, peer, None, ctx.clone()).await;
            ctx.metrics.dicom_associations_open.dec();
        }
    })
    .await;
}

/// Accepts associations over TLS until shutdown.
pub async fn serve_tls(listener: TcpListener, ctx: Arc<DicomContext>, tracker: TaskTracker, tls: Handshaker) {
    let (limit, shutdown) = (ctx.config.max_associations, ctx.shutdown.clone());
    crate::net::accept_loop(listener, limit, shutdown, tracker, "DICOM over TLS", move |stream, peer| {
        let (ctx, tls) = (ctx.clone(), tls.clone());
        async move {
            let Some((stream, identity)) = tls.accept(stream, peer).await else { return };
            ctx.metrics.dicom_associations_open.inc();
            super::association::run(stream, peer, identity, ctx.clone()).await;
            ctx.metrics.dicom_associations_open.dec();
        }
    })
    .await;
}
