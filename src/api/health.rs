//! `/healthz` (the process answers), `/readyz` (it can take data now), `/metrics`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::ApiState;

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the log accepts writes, free space is above the reserve, files can be created
/// in the state directory (not a file system the kernel turned read-only), and we are not
/// shutting down. 503 otherwise, with each check spelled out.
///
/// Sync does not make the edge unready (intake is fine while the hub is away, and a load
/// balancer must keep sending HL7): its state is under `checks.sync`, and `degraded` is
/// true while a dead letter waits for an operator or the sync stopped because the hub holds
/// another history (`checks.sync.diverged`). Scheduled backups neither: their last success
/// and failure are under `checks.backup`, and `degraded` is true while the last one failed.
pub(super) async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let log_writable = !state.writer.closed.load(Ordering::Acquire) && !state.writer.failed.is_cancelled();
    let disk = state.disk.clone();
    let (space, writable) = tokio::task::spawn_blocking(move || (disk.space().ok(), disk.writable()))
        .await
        .unwrap_or_else(|e| (None, Err(std::io::Error::other(e))));
    let disk_ok = space.is_some_and(|s| !s.below_reserve());
    let shutting_down = state.shutdown.is_cancelled();
    let ready = log_writable && disk_ok && writable.is_ok() && !shutting_down;
    let sync = super::sync::sync_report(&state).await.ok();
    let dead_letters = sync.as_ref().map_or(0, |s| s.dead_letters);
    let diverged = sync.as_ref().is_some_and(|s| s.diverged.is_some());
    let backup = state.scheduled_backups.report();
    let body = serde_json::json!({
        "ready": ready,
        "degraded": dead_letters > 0 || diverged || backup.failing,
        "dead_letters": dead_letters,
        "checks": {
            "log_writable": log_writable,
            "disk_reserve": {
                "ok": disk_ok,
                "free_bytes": space.map(|s| s.free),
                "reserve_bytes": space.map(|s| s.reserve),
            },
            "filesystem": {
                "writable": writable.is_ok(),
                "error": writable.err().map(|e| e.to_string()),
            },
            "shutting_down": shutting_down,
            "backup": backup,
            "audit_syslog": state.syslog.as_ref().map(|s| s.lock().expect("syslog status lock").clone()),
            "sync": sync.map(|s| serde_json::json!({
                "enabled": s.enabled,
                "cursor": s.cursor,
                "lag_events": s.lag_events,
                "lag_seconds": s.lag_seconds,
                "breaker": s.breaker,
                "dead_letters": s.dead_letters,
                "epoch": s.epoch,
                "restored_at": s.restored_at,
                "diverged": s.diverged,
                "last_error": s.last_error,
            })),
        },
        "last_seq": state.writer.last_seq.load(Ordering::Acquire),
    });
    let mut body = body;
    // Forwarding does not make the edge unready either: the archive away, intake goes on.
    body["checks"]["forward"] = serde_json::to_value(state.forward.snapshot()).unwrap_or_default();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

pub(super) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    if let Ok(meta) = tokio::fs::metadata(&state.database_path).await {
        state.metrics.log_size_bytes.set(meta.len() as i64);
    }
    let disk = state.disk.clone();
    if let Ok(Ok(space)) = tokio::task::spawn_blocking(move || disk.space()).await {
        state.metrics.disk_free_bytes.set(i64::try_from(space.free).unwrap_or(i64::MAX));
        state.metrics.disk_reserve_bytes.set(i64::try_from(space.reserve).unwrap_or(i64::MAX));
    }
    // The sync gauges that depend on the log's head and the dead letters, as of now.
    if let Ok(report) = super::sync::sync_report(&state).await {
        state.sync.refresh_metrics(&state.metrics, &report);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.encode())
}
