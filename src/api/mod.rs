//! The local HTTP API (axum): health, readiness, metrics and the read API.
//!
//! [`router`] builds the whole API from [`ApiState`] without a socket, so tests drive it
//! with `oneshot`. Errors are JSON `{"error": "..."}` with a 4xx/5xx status; internal
//! causes are logged, never sent.

mod error;
mod events;
mod health;
mod studies;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::log::{DiskGuard, LogReader, WriterState};
use crate::telemetry::Metrics;

/// Everything the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub reader: LogReader,
    pub writer: Arc<WriterState>,
    pub disk: DiskGuard,
    pub metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins: `/readyz` turns 503 so load balancers move away.
    pub shutdown: CancellationToken,
    /// The database file, for the size gauge.
    pub database_path: PathBuf,
}

/// The whole HTTP API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/{seq}", get(events::one))
        .route("/api/v1/studies/{study_uid}", get(studies::one))
        .fallback(error::not_found)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
