//! The local HTTP API (axum): health, readiness, metrics and the read API (events and their
//! live stream; studies, orders, patient cases, matches, and what waits for a match); the
//! daemon's status and the sync's dead letters, with operator actions behind a bearer
//! token.
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
mod health;
mod matches;
mod orders;
mod params;
mod stream;
mod studies;
mod sync;
mod unmatched;

use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

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
    /// Bearer token for operator actions; `None`: they are refused (403).
    pub operator_token: Option<String>,
    /// One backup at a time (each needs room for a copy of the database): one permit, also
    /// taken by each retention sweep (no file is deleted while a backup is streamed).
    pub backups: Arc<tokio::sync::Semaphore>,
}

/// The whole HTTP API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/stream", get(stream::events))
        .route("/api/v1/events/{seq}", get(events::one))
        .route("/api/v1/studies", get(studies::search))
        .route("/api/v1/studies/{study_uid}", get(studies::one))
        .route("/api/v1/orders", get(orders::search))
        .route("/api/v1/orders/{order_id}", get(orders::one))
        .route("/api/v1/cases", get(cases::search))
        .route("/api/v1/cases/{case_id}", get(cases::one))
        .route("/api/v1/matches", get(matches::list))
        .route("/api/v1/unmatched/orders", get(unmatched::orders))
        .route("/api/v1/unmatched/studies", get(unmatched::studies))
        .route("/api/v1/status", get(sync::status))
        .route("/api/v1/dead-letters", get(sync::dead_letters))
        .route("/api/v1/dead-letters/{seq}/retry", post(sync::retry))
        .route("/api/v1/dead-letters/{seq}/skip", post(sync::skip))
        .route("/api/v1/sync/fork", post(sync::fork))
        .route("/api/v1/backup", get(backup::backup))
        .route("/api/v1/audit", get(audit::list))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), audited::audit_reads))
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
    header_timeout: std::time::Duration,
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
                // The client's address, for the audit records of its requests.
                let app = app.clone().layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                let shutdown = shutdown.clone();
                match tls.clone() {
                    None => connections.spawn(serve_connection(stream, app, header_timeout, shutdown)),
                    Some(tls) => connections.spawn(async move {
                        let Some((stream, identity)) = tls.accept(stream, peer).await else { return };
                        let app = match identity {
                            Some(identity) => app.layer(axum::Extension(identity)),
                            None => app,
                        };
                        serve_connection(stream, app, header_timeout, shutdown).await;
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

/// One HTTP/1.1 connection until the client closes, a deadline passes, or shutdown.
async fn serve_connection<S>(stream: S, app: Router, header_timeout: std::time::Duration, shutdown: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
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
