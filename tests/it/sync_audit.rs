//! The audit trail reaches the hub: every record the edge commits is stored by the hub once per
//! `(edge_id, id)` and pages back for a security team, on both of the hub's stores; a hub that
//! does not take audit records does not hold the events back; and `audit.retention` never
//! removes a record before the hub has stored it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use zenedge::audit::{StoredRecord, kinds};
use zenedge::sync::wire_audit::{audit_path, encode_audit_page};

use crate::on_both_stores;
use crate::support::TestDaemon;
use crate::support::eventually;
use crate::support::http::{audit_trail, get_as, raw};
use crate::sync::{EDGE, Hub, assert_hub_holds_the_log, send_orders, sync_toml, wait_synced};

/// Every record the hub holds for `EDGE`: (id, the record as JSON), paged through its API.
async fn hub_audit(hub: SocketAddr) -> Vec<(u64, serde_json::Value)> {
    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let response = get_as(hub, &format!("/v1/audit?edge={EDGE}&after={after}&limit=7"), None).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let page = response.json();
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["edge_id"], EDGE);
            all.push((item["id"].as_u64().unwrap(), item["record"].clone()));
        }
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// The ids of the edge's trail as it stands now (reading it adds one record).
async fn edge_ids(daemon: &TestDaemon) -> Vec<u64> {
    audit_trail(daemon.http).await.iter().map(|r| r["id"].as_u64().unwrap()).collect()
}

/// Waits until the hub holds every id in `ids`.
async fn wait_hub_holds(hub: SocketAddr, ids: &[u64]) -> Vec<(u64, serde_json::Value)> {
    eventually("the hub to hold the edge's audit records", Duration::from_secs(30), || async {
        let held = hub_audit(hub).await;
        let missing: Vec<u64> = ids.iter().copied().filter(|id| !held.iter().any(|(h, _)| h == id)).collect();
        if missing.is_empty() { Ok(held) } else { Err(format!("missing {missing:?}")) }
    })
    .await
}

/// A raw `POST` of a page of stored records to the hub.
async fn post_page(hub: SocketAddr, rows: &[Vec<u8>]) -> serde_json::Value {
    let body = encode_audit_page(rows.iter().map(Vec::as_slice));
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\ncontent-type: application/msgpack\r\n\
         content-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        audit_path(EDGE),
        body.len()
    );
    let response = raw(hub, &[head.into_bytes(), body].concat()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()
}

on_both_stores! {
async fn every_audit_record_reaches_the_hub_once_and_pages_back_by_edge(store: Store) {
    let hub = Hub::start(store).await;
    let daemon = TestDaemon::start_with(&sync_toml(hub.addr, "")).await;
    send_orders(&daemon, "AUD-HUB-", 5).await;
    let ids = edge_ids(&daemon).await;
    assert!(ids.len() >= 7, "start, 5 orders, a read of the trail: {ids:?}");
    let held = wait_hub_holds(hub.addr, &ids).await;
    let held_ids: Vec<u64> = held.iter().map(|(id, _)| *id).collect();
    let mut unique = held_ids.clone();
    unique.dedup();
    assert_eq!(held_ids, unique, "each record once, ascending");
    let orders: Vec<_> = held.iter().filter(|(_, r)| r["event"]["code"] == "110109").collect();
    assert_eq!(orders.len(), 5, "the order records, with their patients: {held:?}");
    assert!(orders[0].1["objects"].as_array().is_some_and(|o| !o.is_empty()));
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    // A page the hub already holds (an answer lost on the way back) stores nothing again.
    let at = jiff::Timestamp::now();
    let row = StoredRecord { id: ids[0], recorded_at: at, record: kinds::application_activity(EDGE, true, at) };
    let page = vec![rmp_serde::to_vec_named(&row).unwrap()];
    let answer = post_page(hub.addr, &page).await;
    assert_eq!((answer["stored_through"].as_u64(), answer["stored"].as_u64()), (Some(ids[0]), Some(0)), "{answer}");
    let again = hub_audit(hub.addr).await;
    assert_eq!(again.iter().filter(|(id, _)| *id == ids[0]).count(), 1);
    assert_eq!(again.iter().find(|(id, _)| *id == ids[0]).unwrap().1, held[0].1, "the first copy stays");
    daemon.stop().await.unwrap();
    hub.stop().await;
}
}

/// A hub router behind a layer that answers `404` on the audit path while `refuse` is set, as
/// a hub older than audit records does.
async fn hub_without_audit(refuse: Arc<AtomicBool>) -> Hub {
    Hub::start_with_layer(crate::support::hubs::Store::Redb, move |request: Request<Body>, next: Next| {
        let refuse = refuse.clone();
        async move {
            let post = request.method() == axum::http::Method::POST;
            if refuse.load(Ordering::SeqCst) && post && request.uri().path().ends_with("/audit") {
                return (StatusCode::NOT_FOUND, "{\"error\": \"no such path\"}").into_response();
            }
            next.run(request).await
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_without_audit_records_gets_every_event_and_the_records_once_it_takes_them() {
    let refuse = Arc::new(AtomicBool::new(true));
    let hub = hub_without_audit(refuse.clone()).await;
    let daemon = TestDaemon::start_with(&sync_toml(hub.addr, "position_check_interval = \"200ms\"\n")).await;
    send_orders(&daemon, "OLD-HUB-", 30).await;
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    assert!(hub_audit(hub.addr).await.is_empty());
    refuse.store(false, Ordering::SeqCst);
    let ids = edge_ids(&daemon).await;
    wait_hub_holds(hub.addr, &ids).await;
    daemon.stop().await.unwrap();
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_no_audit_record_the_hub_has_not_stored() {
    let refuse = Arc::new(AtomicBool::new(true));
    let hub = hub_without_audit(refuse.clone()).await;
    let extra = "position_check_interval = \"200ms\"\n[audit]\nretention = \"1s\"\n";
    let daemon = TestDaemon::start_with(&sync_toml(hub.addr, extra)).await;
    send_orders(&daemon, "RET-HUB-", 3).await;
    let first = audit_trail(daemon.http).await;
    let first_at: jiff::Timestamp = first[0]["recorded_at"].as_str().unwrap().parse().unwrap();
    // Records 3 s old have met several hourly-or-faster sweeps (every second for "1s").
    let trail = eventually("the first records to be 3 s old", Duration::from_secs(30), || async {
        let trail = audit_trail(daemon.http).await;
        let newest: jiff::Timestamp = trail.last().unwrap()["recorded_at"].as_str().unwrap().parse().unwrap();
        let age = newest.duration_since(first_at);
        if age > jiff::SignedDuration::from_secs(3) { Ok(trail) } else { Err(format!("{age:?}")) }
    })
    .await;
    assert_eq!(trail[0]["id"], first[0]["id"], "nothing the hub lacks was removed");
    refuse.store(false, Ordering::SeqCst);
    let ids: Vec<u64> = trail.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    wait_hub_holds(hub.addr, &ids).await;
    eventually("records the hub holds to be removed past the retention", Duration::from_secs(30), || async {
        audit_trail(daemon.http).await[0]["id"].as_u64().unwrap() > ids[0]
    })
    .await;
    daemon.stop().await.unwrap();
    hub.stop().await;
}
