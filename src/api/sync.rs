//! `GET /api/v1/status`, the dead letters of the sync: `GET /api/v1/dead-letters`,
//! `POST /api/v1/dead-letters/{seq}/retry` and `/skip`, and `POST /api/v1/sync/fork` (after
//! the sync stopped at `hub_diverged`: start a new epoch of this edge's stream on the hub).
//!
//! Operator actions pass [`super::auth::authorize`] first, and are written through the log
//! writer like everything else.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, ApiState, params, read};
use crate::sync::SyncReport;
use crate::sync::dead_letters::{self, DeadLetter, DeadLetterAction, DeadLetterStatus, Refusal};

/// A dead letter as the API lists it.
#[derive(Debug, Serialize)]
struct LetterJson {
    seq: u64,
    #[serde(flatten)]
    letter: DeadLetter,
}

/// All dead letters, oldest sequence number first: `{"items": [...], "next": null}`.
pub(super) async fn dead_letters(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let reader = state.reader.clone();
    let letters = read(move || dead_letters::all(&reader)).await?;
    let items: Vec<_> = letters.into_iter().map(|(seq, letter)| LetterJson { seq, letter }).collect();
    super::json(serde_json::json!({ "items": items, "next": null }))
}

pub(super) async fn retry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Response, ApiError> {
    act(state, &headers, &seq, DeadLetterAction::Retry).await
}

pub(super) async fn skip(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Response, ApiError> {
    act(state, &headers, &seq, DeadLetterAction::Skip).await
}

async fn act(state: ApiState, headers: &HeaderMap, seq: &str, action: DeadLetterAction) -> Result<Response, ApiError> {
    if let Some(refused) = super::auth::authorize(&state, headers) {
        return Ok(refused);
    }
    let seq = params::number("seq", Some(seq), 0)?;
    let outcome = dead_letters::act(&state.log, seq, action).await.map_err(ApiError::internal)?;
    match outcome {
        Ok(letter) => {
            tracing::info!(seq, status = letter.status.as_str(), "dead letter changed by an operator");
            if action == DeadLetterAction::Retry {
                state.sync.request_retry();
            }
            Ok(Json(LetterJson { seq, letter }).into_response())
        }
        Err(Refusal::NotFound) => Err(ApiError::not_found(format!("no dead letter with seq {seq}"))),
        Err(Refusal::WrongState(status)) => {
            Err(ApiError { status: StatusCode::CONFLICT, message: wrong_state(seq, action, status) })
        }
    }
}

fn wrong_state(seq: u64, action: DeadLetterAction, status: DeadLetterStatus) -> String {
    let verb = match action {
        DeadLetterAction::Retry => "retried",
        DeadLetterAction::Skip => "skipped",
    };
    let why = match status {
        DeadLetterStatus::Retry => "it is already waiting for redelivery",
        DeadLetterStatus::Skipped => "it is already skipped",
        DeadLetterStatus::Delivered => "the hub already stored it",
        DeadLetterStatus::Parked => "it is parked",
    };
    format!("dead letter {seq} cannot be {verb}: {why} (status {})", status.as_str())
}

/// How long a fork may take: one exchange with the hub and one commit.
const FORK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `POST /api/v1/sync/fork`: the sync worker, stopped at `hub_diverged`, asks the hub for a
/// new epoch forking after the last common sequence number and goes on sending there. 409
/// when the sync has not diverged (or is off); 502 when the hub refused or could not be
/// reached (the sync stays stopped; the request may be repeated).
pub(super) async fn fork(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(refused) = super::auth::authorize(&state, &headers) {
        return Ok(refused);
    }
    let answer = state.sync.request_fork().map_err(|message| ApiError { status: StatusCode::CONFLICT, message })?;
    match tokio::time::timeout(FORK_WAIT, answer).await {
        Ok(Ok(Ok(done))) => {
            tracing::info!(epoch = done.epoch, fork_at = done.fork_at, "sync forked by an operator");
            Ok(Json(done).into_response())
        }
        Ok(Ok(Err(message))) => Err(ApiError { status: StatusCode::BAD_GATEWAY, message }),
        Ok(Err(_)) => Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the sync worker stopped before it answered".into(),
        }),
        Err(_) => Err(ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "the sync worker did not answer in time; `zenedge status` shows whether the fork happened".into(),
        }),
    }
}

/// The sync's report now (reads the dead letters).
pub(super) async fn sync_report(state: &ApiState) -> Result<SyncReport, ApiError> {
    let reader = state.reader.clone();
    let counts = read(move || dead_letters::counts(&reader)).await?;
    let last_seq = state.writer.last_seq.load(Ordering::Acquire);
    Ok(state.sync.report(last_seq, counts, jiff::Timestamp::now()))
}

/// The daemon at a glance: log head, what the log holds (`stored`, over its whole life),
/// what was answered since the daemon started (`ingest`), disk, sync.
pub(super) async fn status(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let sync = sync_report(&state).await?;
    let reader = state.reader.clone();
    let stored = read(move || crate::projections::views::totals(&reader)).await?;
    let disk = state.disk.clone();
    let space = tokio::task::spawn_blocking(move || disk.space()).await.ok().and_then(Result::ok);
    let m = &state.metrics;
    super::json(serde_json::json!({
        "edge_id": state.edge_id,
        "last_seq": state.writer.last_seq.load(Ordering::Acquire),
        "stored": stored,
        "ingest": {
            "hl7_messages": m.hl7_by_ack(),
            "dicom_instances_stored": m.dicom_instances_stored(),
            "studies_completed": m.dicom_studies_completed.get(),
        },
        "disk": {
            "free": space.map(|s| s.free),
            "reserve": space.map(|s| s.reserve),
            "below_reserve": space.map(|s| s.below_reserve()),
        },
        "sync": sync,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Request, header};

    use super::*;
    use crate::config::{DiskReserve, Site};
    use crate::log::{DiskGuard, Log, LogOptions};
    use crate::projections::Projections;
    use crate::sync::SyncShared;
    use crate::telemetry::Metrics;

    const TOKEN: &str = "0123456789abcdef-token";

    struct Api {
        _dir: tempfile::TempDir,
        log: Log<Projections>,
        state: ApiState,
    }

    async fn api(token: Option<&str>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            path: dir.path().join("zenedge.redb"),
            site: Site { tenant_id: "t1".into(), hospital_id: "h1".into(), edge_id: "e1".into() },
            disk_reserve: DiskReserve::Bytes(0),
            queue_depth: 64,
            max_batch: 64,
            cache_size: 1 << 20,
            clock: Arc::new(jiff::Timestamp::now),
        };
        let metrics = Arc::new(Metrics::new());
        let log = crate::domain::test_support::open(&options, metrics.clone()).unwrap();
        let state = ApiState {
            reader: log.reader(),
            writer: log.handle().state.clone(),
            log: log.handle(),
            disk: DiskGuard::new(dir.path().to_owned(), DiskReserve::Bytes(0)),
            metrics,
            shutdown: tokio_util::sync::CancellationToken::new(),
            database_path: options.path.clone(),
            edge_id: "e1".into(),
            sync: Arc::new(SyncShared::new(Some("https://hub.test".into()), 0)),
            operator_token: token.map(str::to_owned),
            backups: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        Api { _dir: dir, log, state }
    }

    /// One request through the router, no socket. hyper-util's adapter drives the router
    /// (a tower service) without needing tower's `ServiceExt` here.
    async fn call(state: &ApiState, method: &str, path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
        use http_body_util::BodyExt;
        use hyper::service::Service;
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let service = hyper_util::service::TowerToHyperService::new(super::super::router(state.clone()));
        let response = service.call(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operator_actions_are_refused_when_no_token_is_configured() {
        let a = api(None).await;
        dead_letters::park(&a.log.handle(), 1, "X".into(), "bad".into()).await.unwrap();
        let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/1/retry", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"], "operator actions are disabled: set http.operator_token");
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operator_actions_need_the_right_token() {
        let a = api(Some(TOKEN)).await;
        dead_letters::park(&a.log.handle(), 1, "X".into(), "bad".into()).await.unwrap();
        for token in [None, Some("0123456789abcdef-wrong"), Some("short")] {
            let (status, _) = call(&a.state, "POST", "/api/v1/dead-letters/1/skip", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        }
        assert_eq!(dead_letters::get(&a.log.reader(), 1).unwrap().unwrap().status, DeadLetterStatus::Parked);
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retry_and_skip_move_a_dead_letter_and_refuse_the_wrong_state() {
        let a = api(Some(TOKEN)).await;
        dead_letters::park(&a.log.handle(), 4, "StudyCompleted".into(), "422: bad".into()).await.unwrap();
        let (status, body) = call(&a.state, "GET", "/api/v1/dead-letters", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["items"][0]["seq"], 4);
        assert_eq!(body["items"][0]["status"], "parked");
        assert_eq!(body["items"][0]["reason"], "422: bad");
        assert_eq!(body["items"][0]["attempts"], 1);
        assert!(body["next"].is_null());
        let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/9/retry", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/4/retry", Some(TOKEN)).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("retry")));
        assert!(a.state.sync.take_retry_request(), "the worker is told");
        let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/4/retry", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(body["error"].as_str().unwrap().contains("already waiting for redelivery"), "{body}");
        let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/4/skip", Some(TOKEN)).await;
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("skipped")));
        let (status, _) = call(&a.state, "POST", "/api/v1/dead-letters/4/skip", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = call(&a.state, "POST", "/api/v1/dead-letters/x/skip", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readyz_stays_ready_but_degraded_while_a_dead_letter_waits() {
        let a = api(Some(TOKEN)).await;
        let (status, body) = call(&a.state, "GET", "/readyz", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["degraded"], false);
        assert_eq!(body["checks"]["sync"]["enabled"], true);
        assert_eq!(body["checks"]["sync"]["breaker"], "closed");
        dead_letters::park(&a.log.handle(), 1, "X".into(), "bad".into()).await.unwrap();
        let (status, body) = call(&a.state, "GET", "/readyz", None).await;
        assert_eq!(status, StatusCode::OK, "intake is fine: still ready");
        assert_eq!((body["ready"].as_bool(), body["degraded"].as_bool()), (Some(true), Some(true)));
        assert_eq!(body["checks"]["sync"]["dead_letters"], 1);
        call(&a.state, "POST", "/api/v1/dead-letters/1/retry", Some(TOKEN)).await;
        assert_eq!(call(&a.state, "GET", "/readyz", None).await.1["degraded"], true, "retry is still open");
        call(&a.state, "POST", "/api/v1/dead-letters/1/skip", Some(TOKEN)).await;
        assert_eq!(call(&a.state, "GET", "/readyz", None).await.1["degraded"], false);
        let metrics = call_text(&a.state, "/metrics").await;
        assert!(metrics.contains("zenedge_sync_dead_letters 0"), "{metrics}");
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_reports_the_log_ingest_disk_and_sync() {
        let a = api(None).await;
        a.state.metrics.hl7_answered("ORM^O01", "AA");
        a.state.metrics.hl7_answered("ADT^A08", "AA");
        a.state.metrics.hl7_answered("ORM^O01", "AE");
        a.state.metrics.dicom_studies_completed.inc();
        a.state.sync.update(|s| s.cursor = 0);
        let (status, body) = call(&a.state, "GET", "/api/v1/status", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["edge_id"], "e1");
        assert_eq!(body["ingest"]["hl7_messages"]["AA"], 2);
        assert_eq!(body["ingest"]["hl7_messages"]["AE"], 1);
        assert_eq!(body["ingest"]["studies_completed"], 1);
        assert_eq!(body["disk"]["below_reserve"], false);
        for key in [
            "enabled",
            "hub_url",
            "cursor",
            "lag_events",
            "lag_seconds",
            "breaker",
            "consecutive_failures",
            "last_error",
            "last_success_at",
            "batches_sent",
            "events_sent",
            "dead_letters",
        ] {
            assert!(body["sync"].get(key).is_some(), "sync.{key} missing: {body}");
        }
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fork_is_an_operator_action_refused_unless_the_sync_diverged() {
        let a = api(Some(TOKEN)).await;
        let (status, _) = call(&a.state, "POST", "/api/v1/sync/fork", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call(&a.state, "POST", "/api/v1/sync/fork", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body["error"].as_str().unwrap().contains("has not diverged"), "{body}");
        // Diverged: the request reaches the worker, whose answer is the API's.
        let divergence = crate::sync::Divergence {
            epoch: 0,
            first_differing_seq: 6,
            fork_at: 5,
            hub_stored_through: 15,
            detected_at: jiff::Timestamp::now(),
        };
        a.state.sync.update(|s| s.diverged = Some(divergence));
        let (ready, _) = call(&a.state, "GET", "/readyz", None).await;
        assert_eq!(ready, StatusCode::OK);
        assert_eq!(
            call(&a.state, "GET", "/readyz", None).await.1["checks"]["sync"]["diverged"]["first_differing_seq"],
            6
        );
        assert_eq!(call(&a.state, "GET", "/readyz", None).await.1["degraded"], true);
        let worker = a.state.sync.clone();
        let answered = tokio::spawn(async move {
            loop {
                if let Some(reply) = worker.take_fork_request() {
                    let done = crate::sync::ForkDone { epoch: 1, parent: 0, fork_at: 5, to_deliver: 20 };
                    reply.send(Ok(done)).unwrap();
                    return;
                }
                worker.woken().await;
            }
        });
        let (status, body) = call(&a.state, "POST", "/api/v1/sync/fork", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, serde_json::json!({ "epoch": 1, "parent": 0, "fork_at": 5, "to_deliver": 20 }));
        answered.await.unwrap();
        a.log.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_while_another_runs_is_refused_with_409() {
        let a = api(Some(TOKEN)).await;
        let running = a.state.backups.clone().try_acquire_owned().unwrap();
        let (status, body) = call(&a.state, "GET", "/api/v1/backup", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"], "a backup or a retention sweep is already running");
        drop(running);
        let (status, _) = call(&a.state, "GET", "/api/v1/backup", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        a.log.close().await.unwrap();
    }

    async fn call_text(state: &ApiState, path: &str) -> String {
        use http_body_util::BodyExt;
        use hyper::service::Service;
        let service = hyper_util::service::TowerToHyperService::new(super::super::router(state.clone()));
        let response = service.call(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }
}
