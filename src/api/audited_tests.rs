use serde_json::json;

use super::*;

#[test]
fn patient_data_paths_are_the_read_api_and_nothing_beside_it() {
    for path in ["/api/v1/events", "/api/v1/events/7", "/api/v1/studies/1.2.3", "/api/v1/unmatched/orders"] {
        assert!(is_patient_data(path), "{path}");
    }
    for path in ["/api/v1/eventsx", "/api/v1/status", "/api/v1/audit", "/metrics", "/readyz", "/api/v1/dead-letters"] {
        assert!(!is_patient_data(path), "{path}");
    }
}

#[test]
fn patient_ids_are_collected_once_each_from_every_shape_the_api_answers() {
    let answer = json!({
        "items": [
            { "data": { "patient_id": "P1", "other_patient_ids": ["P2", "P1"],
                        "summary": { "patient": { "id": "P3", "identifiers": [{ "id": "P3" }, { "id": "P4" }] } } } },
            { "patient_ids": ["P5"], "surviving_patient_id": "P6", "prior_patient_ids": ["P7"], "patient_id": "" },
        ],
        "next": null
    });
    let mut ids = patient_ids(&answer);
    ids.sort();
    assert_eq!(ids, ["P1", "P2", "P3", "P4", "P5", "P6", "P7"]);
    assert!(patient_ids(&json!({ "items": [], "next": null })).is_empty());
}

/// The API over a fresh log, its writer closed when `closed`.
async fn answer_with_log(closed: bool, path: &str) -> (axum::http::StatusCode, Vec<crate::audit::StoredRecord>) {
    use std::sync::Arc;

    use http_body_util::BodyExt;
    use hyper::service::Service;

    use crate::config::{DiskReserve, Site};
    use crate::log::{DiskGuard, LogOptions};
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
    let metrics = Arc::new(crate::telemetry::Metrics::new());
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
        audit_source: crate::audit::AuditSource { source_id: "e1".into(), site_id: "h1".into() },
        syslog: None,
        sync: Arc::new(crate::sync::SyncShared::new(None, 0)),
        operator_token: None,
        backups: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let reader = log.reader();
    if closed {
        log.close().await.unwrap();
    }
    let service = hyper_util::service::TowerToHyperService::new(super::super::router(state));
    let request = axum::http::Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = service.call(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    if status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("audit trail cannot record"), "{status}: {text}");
    }
    (status, crate::audit::page(&reader, 0, 10).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_patient_data_is_answered_once_its_record_is_committed_and_503_when_it_cannot_be() {
    let (status, trail) = answer_with_log(false, "/api/v1/events?limit=5").await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].record.event.code, "110112");
    let (status, trail) = answer_with_log(true, "/api/v1/events?limit=5").await;
    assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(trail.is_empty());
    let (status, trail) = answer_with_log(true, "/api/v1/status").await;
    assert_eq!(status, axum::http::StatusCode::OK, "no patient data, no record needed");
    assert!(trail.is_empty());
}
