//! The local HTTP API (axum): health, readiness, metrics and the read API (events and their
//! live stream; studies, orders, patient cases, matches, and what waits for a match); the
//! daemon's status and the sync's dead letters, with operator actions; and the status page a
//! person opens in a browser ([`page`]).
//!
//! Nothing but `/healthz` and `/readyz` is answered without a client token with the right
//! scope ([`auth`]); each route says what it needs in the route table ([`routes`]).
//!
//! Every answer with patient data is audited before it is sent ([`audited`]); the trail is
//! paged at `/api/v1/audit`.
//!
//! [`router`] builds the whole API from [`ApiState`] without a socket, so tests drive it
//! with `oneshot`. Errors are JSON `{"error": "..."}` with a 4xx/5xx status; internal
//! causes are logged, never sent. Reads run on the blocking pool, each in one redb read
//! transaction ([`crate::log::LogReader`]).

mod audit;
mod audited;
mod auth;
mod backup;
mod cases;
mod error;
mod events;
mod export;
mod forward;
mod health;
mod limits;
mod matches;
mod orders;
mod page;
mod params;
mod routes;
mod stream;
mod studies;
mod sync;
mod tar_stream;
#[cfg(test)]
mod test_api;
mod unmatched;
mod worklist;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

pub use auth::{Access, AccessControl, Caller, LOCAL_CLIENT, Via};
pub use error::ApiError;
pub use routes::table as route_table;

use crate::log::{DiskGuard, LogHandle, LogReader, ReadError, WriterState};
use crate::projections::Projections;
use crate::sync::SyncShared;
use crate::telemetry::Metrics;
use crate::tls::Handshaker;

/// Everything the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub reader: LogReader,
    pub writer: Arc<WriterState>,
    /// Operator actions (dead letters) are written through the log writer.
    pub log: LogHandle<Projections>,
    pub disk: DiskGuard,
    pub metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins: `/readyz` turns 503 so load balancers move away.
    pub shutdown: CancellationToken,
    /// The database file, for the size gauge.
    pub database_path: PathBuf,
    /// This edge's id, for `/api/v1/status`.
    pub edge_id: String,
    /// This edge as the audit messages name it.
    pub audit_source: crate::audit::AuditSource,
    /// The syslog forwarder's status (`audit.syslog` set), for `/readyz`.
    pub syslog: Option<crate::syslog::SharedStatus>,
    /// The sync worker's live status (disabled when no hub is configured).
    pub sync: Arc<SyncShared>,
    /// Each forwarding destination's live status (empty without destinations).
    pub forward: Arc<crate::forward::ForwardShared>,
    /// Who may do what: the clients, and the per-source rate limits.
    pub access: Arc<AccessControl>,
    /// One backup at a time (each needs room for a copy of the database): one permit, also
    /// taken by each retention sweep (no file is deleted while a backup is streamed).
    pub backups: Arc<tokio::sync::Semaphore>,
    /// The scheduled backups' last success and failure, for `/readyz` and `/api/v1/status`.
    pub scheduled_backups: Arc<crate::backups::BackupShared>,
    /// Where the records of reads become durable (`audit.journal`); `None`: through a commit
    /// of the log each.
    pub journal: Option<crate::audit::Journal>,
}

/// The whole HTTP API: every route of [`routes`] behind its guard, a path that matches none
/// answered 404 to a known client only, and the per-source request rate before all of it.
pub fn router(state: ApiState) -> Router {
    let guarded = |access: Access, browser: bool| {
        axum::middleware::from_fn_with_state(state.clone(), move |axum::extract::State(s), request, next| {
            auth::guard(access, browser, s, request, next)
        })
    };
    let audited = axum::middleware::from_fn_with_state(state.clone(), audited::audit_reads);
    let mut router = Router::new();
    for route in routes::routes() {
        // The guard outside, so the audit of a read names its client; `layer`, not
        // `route_layer`: a method the path does not take is refused like any other anonymous
        // request, not answered 405.
        let browser = routes::BROWSER_PATHS.contains(&route.path);
        let handler = route.handler.layer(audited.clone()).layer(guarded(route.access, browser));
        router = router.route(route.path, handler);
    }
    let fallback = axum::routing::any(error::not_found).layer(guarded(Access::Authenticated, false));
    router
        .fallback_service(fallback.with_state(state.clone()))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::limit_requests))
        .with_state(state)
}

/// Serves the API on `listener` until `state.shutdown` is cancelled, then lets the requests
/// in flight finish (idle connections close at once). With `tls`, every connection is HTTPS
/// (`http.tls`): the handshake comes first, and a client certificate, when one is presented
/// and verified, is the request extension [`crate::security::PeerIdentity`] of each of the connection's
/// requests.
///
/// HTTP/1.1 through hyper directly rather than `axum::serve`, which gives hyper no timer: its
/// header read timeout then never fires, and a client sending its headers a byte at a time
/// (or opening connections and sending nothing) holds each connection forever. Here every
/// connection must deliver each request's headers within `header_timeout`, which also
/// bounds how long a kept-alive connection may sit idle. Request bodies are never read by a
/// handler: hyper drops what remains of one after the response instead of waiting for it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: ConnectionLimits,
    tls: Option<Handshaker>,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = router(state);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let (app, shutdown) = (app.clone(), shutdown.clone());
                match tls.clone() {
                    None => connections.spawn(serve_connection(stream, peer, None, app, limits, shutdown)),
                    Some(tls) => connections.spawn(async move {
                        let Some((stream, identity)) = tls.accept(stream, peer).await else { return };
                        serve_connection(stream, peer, identity, app, limits, shutdown).await;
                    }),
                };
            }
            Err(e) => {
                // Usually EMFILE/ENFILE: back off instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What bounds one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request's headers must arrive within this time (`http.header_timeout`).
    pub header_timeout: std::time::Duration,
    /// Largest request head read (`http.max_header_bytes`); larger ones are answered 431.
    pub max_header_bytes: usize,
}

/// One HTTP/1.1 connection until the client closes, a deadline passes, or shutdown. Each of
/// its requests carries the peer's address (`ConnectInfo`) and, over TLS with a verified
/// client certificate, its [`crate::security::PeerIdentity`].
async fn serve_connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    identity: Option<crate::security::PeerIdentity>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let app = app.map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(identity) = &identity {
            request.extensions_mut().insert(identity.clone());
        }
        request
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Runs a read on the blocking pool; its failures are internal errors.
async fn read<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ReadError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?.map_err(ApiError::internal)
}

/// A view as the JSON body.
fn json<T: serde::Serialize>(view: T) -> Result<Json<serde_json::Value>, ApiError> {
    serde_json::to_value(view).map(Json).map_err(ApiError::internal)
}
