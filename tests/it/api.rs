//! The HTTP API: health, readiness, metrics, and the events read API with cursor paging
//! and clear 4xx errors.

use crate::support::TestDaemon;
use crate::support::hl7msg::orm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_paged_with_a_next_cursor_until_the_end() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for i in 0..5 {
        c.send(&orm(&format!("P-{i}"), "A")).await;
    }
    let first = d.get("/api/v1/events?after=0&limit=2").await.json();
    let seqs = |page: &serde_json::Value| -> Vec<u64> {
        page["items"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs(&first), [1, 2]);
    assert_eq!(first["next"], 2);
    let second = d.get("/api/v1/events?after=2&limit=2").await.json();
    assert_eq!(seqs(&second), [3, 4]);
    let last = d.get("/api/v1/events?after=4&limit=2").await.json();
    assert_eq!(seqs(&last), [5]);
    assert!(last["next"].is_null());
    let one = d.get("/api/v1/events/3").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["data"]["control_id"], "P-2");
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_and_unknown_things_get_4xx_with_a_message() {
    let d = TestDaemon::start().await;
    for (path, status, needle) in [
        ("/api/v1/events?after=-1", 400, "after"),
        ("/api/v1/events?limit=0", 400, "limit"),
        ("/api/v1/events?limit=100000", 400, "limit"),
        ("/api/v1/events?after=abc", 400, "after"),
        ("/api/v1/events/99", 404, "99"),
        ("/api/v1/events/x", 400, "seq"),
        ("/api/v1/nothing", 404, "/api/v1/nothing"),
    ] {
        let r = d.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let message = r.json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{path}: {message}");
    }
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let d = TestDaemon::start().await;
    d.client().await.send(&orm("M-1", "A")).await;
    assert_eq!(d.get("/healthz").await.status, 200);
    let ready = d.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let ready = ready.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["log_writable"], true);
    assert_eq!(ready["checks"]["filesystem"]["writable"], true);
    assert_eq!(ready["last_seq"], 1);
    let metrics = d.get("/metrics").await;
    assert!(metrics.headers.to_ascii_lowercase().contains("content-type: text/plain"), "{}", metrics.headers);
    for needle in [
        "zenedge_hl7_messages_total{message_type=\"ORM^O01\",ack=\"AA\"} 1",
        "zenedge_log_last_seq 1",
        "zenedge_log_commit_seconds_bucket",
        "zenedge_log_commit_batch_size_bucket",
        "zenedge_log_size_bytes ",
        "zenedge_mllp_connections_total",
    ] {
        assert!(metrics.body.contains(needle), "missing {needle}:\n{}", metrics.body);
    }
    d.stop().await.unwrap();
}

/// `zenedge status` reads like lifetime totals, and now they are: what the log holds is
/// counted from the log, so a restart does not reset it; the counters since start are
/// reported apart (`ingest`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_what_the_log_holds_across_a_restart_apart_from_what_came_since_start() {
    use crate::support::dataset::{Instance, dataset};
    use crate::support::scu::{self, CT_IMAGE_STORAGE, EXPLICIT_LE};
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    for i in 0..3 {
        c.send(&orm(&format!("S-{i}"), &format!("ACC-S-{i}"))).await;
    }
    c.send(&orm("S-0", "ACC-S-0")).await; // a re-send: answered, not stored again
    drop(c);
    let addr = d.dicom;
    let answer = tokio::task::spawn_blocking(move || {
        let i = Instance::ct(60, 1, 1);
        let mut scu = scu::connect_ct(addr, EXPLICIT_LE);
        let a = scu.store(CT_IMAGE_STORAGE, &i.sop, &dataset(&i, EXPLICIT_LE), 16_000);
        scu.release();
        a
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 0);
    let before = d.get("/api/v1/status").await.json();
    assert_eq!(before["ingest"]["hl7_messages"]["AA"], 4);
    let d = d.restart().await;
    let after = d.get("/api/v1/status").await.json();
    let stored = &after["stored"];
    assert_eq!(
        (&stored["hl7_messages"], &stored["dicom_instances"], &stored["studies"], &stored["studies_completed"]),
        (&3.into(), &1.into(), &1.into(), &0.into()),
        "{after}"
    );
    assert_eq!(stored, &before["stored"], "the same before and after the restart");
    assert!(after["ingest"]["hl7_messages"].as_object().unwrap().is_empty(), "since start: nothing yet");
    d.stop().await.unwrap();
}

/// `/api/v1/events` refuses unknown parameters like the rest of the read API, and no path
/// answers with axum's "Failed to deserialize query string" wording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_query_parameters_are_400_naming_the_parameter_and_what_the_path_takes() {
    let d = TestDaemon::start().await;
    for (path, message) in [
        ("/api/v1/events?foo=1", "unknown parameter \"foo\"; this path takes after, limit"),
        ("/api/v1/events?after=0&limit=2&after=1", "parameter \"after\" is given more than once"),
        ("/api/v1/matches?foo=1", "unknown parameter \"foo\"; this path takes after, limit, accession"),
    ] {
        let r = d.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], message, "{path}");
    }
    d.stop().await.unwrap();
}

/// One shape for an event everywhere: a page item, `/api/v1/events/{seq}` and a line of
/// `zenedge events` are the same text, keys in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_has_the_same_text_in_a_page_alone_and_from_zenedge_events() {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        items: Vec<&'a serde_json::value::RawValue>,
    }
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    c.send(&orm("SHAPE-1", "ACC-SHAPE")).await;
    c.send(&orm("SHAPE-2", "ACC-SHAPE")).await;
    drop(c);
    let body = d.get("/api/v1/events?after=0").await.body;
    let page: Page<'_> = serde_json::from_str(&body).unwrap();
    assert_eq!(page.items.len(), 2);
    let work = tempfile::tempdir().unwrap();
    let config = crate::support::config::write_for_daemon(&work.path().join("edge.toml"), d.dir.path(), d.http, None);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_zenedge")).args(["events", "--config"]).arg(&config).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    for (n, item) in page.items.iter().enumerate() {
        let alone = d.get(&format!("/api/v1/events/{}", n + 1)).await.body;
        assert_eq!(alone, item.get(), "/api/v1/events/{} differs from the page", n + 1);
        assert_eq!(lines[n], item.get(), "zenedge events line {n} differs from the page");
    }
    assert!(page.items[0].get().starts_with("{\"seq\":1,\"event_id\":"), "{}", page.items[0].get());
    d.stop().await.unwrap();
}
