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

/// One request as the client `everything` to the API over a fresh log, its writer closed
/// when `closed`: the status, and the trail afterwards.
async fn answer_with_log(closed: bool, path: &str) -> (axum::http::StatusCode, Vec<crate::audit::StoredRecord>) {
    use super::super::test_api::{ALL, api, call};
    let a = api(None).await;
    let reader = a.log.reader();
    if closed {
        a.log.close().await.unwrap();
    }
    let (status, body) = call(&a.state, "GET", path, Some(ALL)).await;
    if status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        let text = body["error"].as_str().unwrap_or_default();
        assert!(text.contains("audit trail cannot record"), "{status}: {body}");
    }
    (status, crate::audit::page(&reader, 0, 10).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_patient_data_is_answered_once_its_record_is_committed_and_503_when_it_cannot_be() {
    let (status, trail) = answer_with_log(false, "/api/v1/events?limit=5").await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].record.event.code, "110112");
    assert_eq!(trail[0].record.participants[0].user_id, "everything", "the client is named");
    let (status, trail) = answer_with_log(true, "/api/v1/events?limit=5").await;
    assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(trail.is_empty());
    let (status, trail) = answer_with_log(true, "/api/v1/status").await;
    assert_eq!(status, axum::http::StatusCode::OK, "no patient data, no record needed");
    assert!(trail.is_empty());
}
