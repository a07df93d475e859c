use axum::body::Body;
use axum::http::{Request, header};

use super::super::test_api::{STATUS, api, call};
use super::*;

const TOKEN: &str = "0123456789abcdef-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_actions_are_refused_to_a_client_without_the_operator_scope() {
    let a = api(None).await;
    dead_letters::park(&a.log.handle(), 1, "X".into(), "bad".into()).await.unwrap();
    let (status, body) = call(&a.state, "POST", "/api/v1/dead-letters/1/retry", Some(STATUS)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "client \"status-reader\" lacks the scope \"operator\" this path needs");
    let (status, _) = call(&a.state, "POST", "/api/v1/dead-letters/1/retry", Some(TOKEN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no operator_token configured: an unknown token");
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
    let (status, body) = call(&a.state, "GET", "/api/v1/dead-letters", Some(TOKEN)).await;
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
    let metrics = call_text(&a.state, "/metrics", STATUS).await;
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
    let (status, body) = call(&a.state, "GET", "/api/v1/status", Some(STATUS)).await;
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
    assert_eq!(call(&a.state, "GET", "/readyz", None).await.1["checks"]["sync"]["diverged"]["first_differing_seq"], 6);
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

async fn call_text(state: &ApiState, path: &str, token: &str) -> String {
    use http_body_util::BodyExt;
    use hyper::service::Service;
    let service = hyper_util::service::TowerToHyperService::new(super::super::router(state.clone()));
    let request = Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let response = service.call(request.body(Body::empty()).unwrap()).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}
