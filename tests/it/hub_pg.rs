//! The hub's PostgreSQL store as its operators and consumers meet it: the cross-edge feed
//! never skips an event whose transaction committed late and wakes a long poll through
//! `LISTEN/NOTIFY`; the schema is applied once by migrations even when two hubs start at once,
//! and a newer schema is refused; `zenedge hub migrate` and `zenedge hub check`; the columns the
//! hub's team queries by. And, on either store, a client that sends its request slowly holds a
//! connection for a bounded time only.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zenedge::hub::{HubOptions, PgStore};

use crate::on_both_stores;
use crate::support::http::get;
use crate::support::hubs::{Backing, Store, settings};
use crate::support::{eventually, postgres};
use crate::sync::{EDGE, Hub, options};

fn backing(test: &str) -> Option<Backing> {
    match Store::Postgres.backing() {
        Ok(backing) => Some(backing),
        Err(reason) => {
            postgres::skip(test, &reason);
            None
        }
    }
}

/// A batch of `edge`'s events `first..=last` as an HL7 message event would look, with a
/// patient id and an accession number; its status.
async fn post(hub: &Hub, edge: &str, first: u64, last: u64) -> u16 {
    post_envelopes(hub, edge, first, last, &test_envelopes(edge, first, last)).await
}

/// Envelopes `first..=last` of `edge` with the columns the hub's team queries by.
fn test_envelopes(edge: &str, first: u64, last: u64) -> Vec<Vec<u8>> {
    (first..=last)
        .map(|seq| {
            let e = serde_json::json!({
                "seq": seq, "event_id": uuid::Uuid::from_u128(u128::from(seq) + 1000 * edge.len() as u128),
                "event_type": "InstanceStored", "tenant_id": "t1", "hospital_id": "h1", "edge_id": edge,
                "occurred_at": "2026-12-01T10:00:00Z", "recorded_at": "2026-12-01T10:00:01Z",
                "aggregate": {"type": "study", "id": format!("1.2.{seq}")},
                "data": {"patient_id": format!("P{seq}"), "accession_number": format!("ACC{seq}")}
            });
            // event_id as msgpack binary, as the edge writes a UUID.
            let mut map = e.as_object().unwrap().clone();
            map.remove("event_id");
            #[derive(serde::Serialize)]
            struct WithId {
                event_id: uuid::Uuid,
                #[serde(flatten)]
                rest: serde_json::Map<String, serde_json::Value>,
            }
            let id = uuid::Uuid::from_u128(u128::from(seq) + 1000 * edge.len() as u128);
            rmp_serde::to_vec_named(&WithId { event_id: id, rest: map }).unwrap()
        })
        .collect()
}

/// One batch `first..=last` of `edge` holding `envelopes`; the hub's status code.
async fn post_envelopes(hub: &Hub, edge: &str, first: u64, last: u64, envelopes: &[Vec<u8>]) -> u16 {
    let body = zenedge::sync::wire::encode_batch(envelopes.iter().map(Vec::as_slice), 1);
    let head = format!(
        "POST /v1/edges/{edge}/events HTTP/1.1\r\nHost: hub\r\nConnection: close\r\ncontent-type: application/msgpack\r\n\
         content-encoding: gzip\r\nzenedge-first-seq: {first}\r\nzenedge-last-seq: {last}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    crate::support::http::raw(hub.addr, &[head.into_bytes(), body].concat()).await.status
}

/// `(edge_id, seq)` of a feed page's items, and its `next`.
fn page(json: &serde_json::Value) -> (Vec<(String, u64)>, String) {
    let items = json["items"].as_array().unwrap();
    let seen = items.iter().map(|i| (i["edge_id"].as_str().unwrap().to_owned(), i["seq"].as_u64().unwrap())).collect();
    (seen, json["next"].as_str().unwrap().to_owned())
}

/// The feed after `cursor` once it holds `n` events: other tests' transactions on the shared
/// server hold it back for a moment (the feed waits for every older open transaction).
async fn feed_with(hub: &Hub, cursor: &str, n: usize) -> (Vec<(String, u64)>, String) {
    eventually(&format!("{n} events in the feed"), Duration::from_secs(30), || async {
        let found = page(&get(hub.addr, &format!("/v1/events?after_cursor={cursor}")).await.json());
        if found.0.len() >= n { Ok(found) } else { Err(format!("{found:?}")) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_never_skips_an_event_whose_transaction_committed_late() {
    let Some(backing) = backing("the_feed_never_skips") else { return };
    let (server, url) = backing.postgres().unwrap();
    let hub = Hub::start_on(backing.clone(), options(), None).await;
    assert_eq!(post(&hub, "edge-a", 1, 3).await, 200);
    let (seen, after_a) = feed_with(&hub, "", 3).await;
    assert_eq!(seen, [("edge-a".into(), 1), ("edge-a".into(), 2), ("edge-a".into(), 3)]);
    // A slow writer (standing in for another hub's batch) takes its row numbers first and
    // commits last: its transaction is still open while edge-b's batch commits.
    let mut slow = Command::new(server.bin().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sql = slow.stdin.take().unwrap();
    writeln!(
        sql,
        "BEGIN; INSERT INTO hub_streams (edge_id, epoch, stored_through) VALUES ('late', 0, 1); \
         INSERT INTO hub_events (edge_id, epoch, seq, event_id, event_type, envelope) \
         VALUES ('late', 0, 1, gen_random_uuid(), 'Late', '\\x80'); SELECT 'inserted';"
    )
    .unwrap();
    sql.flush().unwrap();
    eventually("the slow writer's row", Duration::from_secs(20), || async {
        server.psql(url, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.query LIKE '%inserted%' AND l.locktype = 'transactionid'") != "0"
    })
    .await;
    assert_eq!(post(&hub, "edge-b", 1, 2).await, 200);
    let held = get(hub.addr, &format!("/v1/events?after_cursor={after_a}")).await.json();
    assert_eq!(page(&held).0, [], "edge-b's batch waits behind the transaction still open");
    writeln!(sql, "COMMIT;").unwrap();
    drop(sql);
    slow.wait().unwrap();
    let (seen, next) = feed_with(&hub, &after_a, 3).await;
    assert_eq!(
        seen,
        [("late".into(), 1), ("edge-b".into(), 1), ("edge-b".into(), 2)],
        "nothing skipped, in commit order"
    );
    assert_eq!(page(&get(hub.addr, &format!("/v1/events?after_cursor={next}")).await.json()).0, []);
    // Paging: limit, and the cursor of each item.
    let first = get(hub.addr, "/v1/events?limit=2").await.json();
    let (two, cursor) = page(&first);
    assert_eq!(two.len(), 2);
    assert_eq!(first["items"][1]["cursor"].as_str().unwrap(), cursor);
    assert_eq!(first["items"][0]["event"]["data"]["accession_number"], "ACC1");
    assert_eq!(get(hub.addr, "/v1/events?after_cursor=bogus").await.status, 400);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_batch_wakes_the_feed_s_long_poll_through_a_notification() {
    let Some(backing) = backing("a_stored_batch_wakes_the_feed") else { return };
    let hub = Hub::start_on(backing.clone(), options(), None).await;
    eventually("the listener to be connected", Duration::from_secs(20), || async { hub.store.notifications() > 0 })
        .await;
    let before = hub.store.notifications();
    let addr = hub.addr;
    let poll = tokio::spawn(async move { get(addr, "/v1/events?wait=30").await.json() });
    assert_eq!(post(&hub, EDGE, 1, 1).await, 200);
    let answer = poll.await.unwrap();
    assert_eq!(page(&answer).0, [(EDGE.to_owned(), 1)]);
    eventually("the notification to arrive", Duration::from_secs(20), || async { hub.store.notifications() > before })
        .await;
    assert_eq!(get(hub.addr, "/v1/events?wait=61").await.status, 400);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_keeps_its_bytes_and_the_columns_the_hub_team_queries_by() {
    let Some(backing) = backing("each_event_keeps_its_bytes") else { return };
    let (server, url) = backing.postgres().unwrap();
    let hub = Hub::start_on(backing.clone(), options(), None).await;
    assert_eq!(post(&hub, EDGE, 1, 2).await, 200);
    let row = server.psql(
        url,
        "SELECT tenant_id, hospital_id, event_type, aggregate_type, aggregate_id, patient_ids, accession, \
         occurred_at AT TIME ZONE 'UTC' FROM hub_events WHERE seq = 2",
    );
    assert_eq!(row, "t1|h1|InstanceStored|study|1.2.2|{P2}|ACC2|2026-12-01 10:00:00");
    let found = server.psql(url, "SELECT seq FROM hub_events WHERE patient_ids @> ARRAY['P1'] AND accession = 'ACC1'");
    assert_eq!(found, "1");
    let held = hub.events().await;
    let (_, bytes) = &held[1];
    assert_eq!(server.psql(url, "SELECT encode(envelope, 'hex') FROM hub_events WHERE seq = 2"), hex(bytes));
    // What an operator watches: batches, events, COPY time, the pool, each edge's position.
    let metrics = get(hub.addr, "/metrics").await.body;
    for line in [
        "zenedge_hub_batches_total{outcome=\"stored\"} 1".to_owned(),
        "zenedge_hub_events_total 2".to_owned(),
        "zenedge_hub_copy_seconds_count 1".to_owned(),
        format!("zenedge_hub_edge_stored_through{{edge_id=\"{EDGE}\"}} 2"),
        "zenedge_hub_pool_connections{state=\"open\"}".to_owned(),
        format!("zenedge_hub_edge_lag_seconds{{edge_id=\"{EDGE}\"}}"),
    ] {
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
    hub.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_starting_at_once_apply_the_schema_once_and_a_newer_schema_is_refused() {
    let Some(backing) = backing("two_hubs_starting_at_once") else { return };
    let (server, url) = backing.postgres().unwrap();
    let config = settings(url);
    let (a, b) = tokio::join!(PgStore::open(&config), PgStore::open(&config));
    a.unwrap();
    b.unwrap();
    assert_eq!(
        server.psql(url, "SELECT string_agg(version::text, ',' ORDER BY version) FROM hub_schema_version"),
        "1,2"
    );
    server.psql(url, "INSERT INTO hub_schema_version (version, name) VALUES (99, 'from the future')");
    let error = PgStore::open(&settings(url)).await.unwrap_err().to_string();
    assert!(error.contains("newer zenedge hub") && error.contains("99"), "{error}");
}

fn zenedge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zenedge")).args(args).stdin(Stdio::null()).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_migrate_prints_the_version_and_hub_check_lists_every_edge_s_position() {
    let Some(backing) = backing("hub_migrate_and_check") else { return };
    let (_, url) = backing.postgres().unwrap();
    let url = url.to_owned();
    let check = zenedge(&["hub", "check", "--postgres", &url]);
    assert_eq!(check.status.code(), Some(1), "an empty database is not ready");
    assert!(String::from_utf8_lossy(&check.stdout).contains("zenedge hub migrate"), "{check:?}");
    let migrated = zenedge(&["hub", "migrate", "--postgres", &url]);
    assert!(migrated.status.success(), "{migrated:?}");
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("schema version 2 (was 0)"), "{migrated:?}");
    let again = zenedge(&["hub", "migrate", "--postgres", &url]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"), "{again:?}");
    let hub = Hub::start_on(backing.clone(), options(), None).await;
    assert_eq!(post(&hub, EDGE, 1, 4).await, 200);
    let check = zenedge(&["hub", "check", "--postgres", &url]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(text.contains("schema: version 2 (up to date)") && text.contains("edges: 1"), "{text}");
    assert!(text.lines().any(|l| l.contains(EDGE) && l.contains("stored_through 4")), "{text}");
    assert!(!text.contains("postgres@"), "no user or password in the output: {text}");
    let weak = zenedge(&["hub", "check", "--postgres", &format!("{url}?sslmode=require")]);
    assert_eq!(weak.status.code(), Some(78), "{weak:?}");
    assert!(String::from_utf8_lossy(&weak.stderr).contains("verify-full"), "{weak:?}");
    hub.stop().await;
}

#[test]
fn a_postgres_url_the_hub_cannot_use_is_refused_before_it_listens() {
    let no_ca =
        zenedge(&["hub", "--listen", "127.0.0.1:0", "--postgres", "postgres://hub@db.invalid/zen?sslmode=verify-full"]);
    assert_eq!(no_ca.status.code(), Some(78), "{no_ca:?}");
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("CA file"), "{no_ca:?}");
    let missing = "postgres://hub:secret@db.invalid/zen?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let out = zenedge(&["hub", "--listen", "127.0.0.1:0", "--postgres", missing]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(text.contains("/nonexistent/ca.pem") && !text.contains("secret"), "{text}");
}

on_both_stores! {
async fn a_slow_body_is_answered_408_and_slow_headers_close_the_connection(store: Store) {
    let quick =
        HubOptions { header_timeout: Duration::from_millis(300), body_timeout: Duration::from_millis(300), ..options() };
    let hub = Hub::start_on(store.backing().unwrap(), quick, None).await;
    let mut slow_body = TcpStream::connect(hub.addr).await.unwrap();
    let head = format!(
        "POST /v1/edges/{EDGE}/events HTTP/1.1\r\nHost: hub\r\ncontent-type: application/msgpack\r\n\
         content-encoding: gzip\r\nzenedge-first-seq: 1\r\nzenedge-last-seq: 1\r\ncontent-length: 1000\r\n\r\n"
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    slow_body.write_all(&[0x1f, 0x8b]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow_body.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the hub answers a body that does not arrive in time");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let mut slow_head = TcpStream::connect(hub.addr).await.unwrap();
    slow_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow_head.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the hub closes a connection whose headers do not arrive in time");
    assert_eq!(hub.stored_through().await, 0);
    hub.stop().await;
}
}

on_both_stores! {
async fn a_body_refused_near_its_end_stores_nothing_of_what_was_taken_in_before(store: Store) {
    // A refusal found late in a large body (past the first thousands of events) stores
    // nothing of it, and the same range then goes in whole.
    let backing = store.backing().unwrap();
    let hub = Hub::start_on(backing.clone(), options(), None).await;
    let mut sent = test_envelopes(EDGE, 1, 3000);
    sent[2899] = test_envelopes("edge-2", 2900, 2900).remove(0);
    assert_eq!(post_envelopes(&hub, EDGE, 1, 3000, &sent).await, 422);
    // Event 2951 twice (where 2952 belongs): refused as out of place, never a second row.
    let mut sent = test_envelopes(EDGE, 1, 3000);
    sent[2951] = sent[2950].clone();
    assert_eq!(post_envelopes(&hub, EDGE, 1, 3000, &sent).await, 422);
    assert_eq!(hub.stored_through().await, 0);
    assert!(hub.events().await.is_empty());
    if let Some((server, url)) = backing.postgres() {
        assert_eq!(server.psql(url, "SELECT count(*) FROM hub_events"), "0");
    }
    assert_eq!(post(&hub, EDGE, 1, 3000).await, 200);
    assert_eq!(hub.stored_through().await, 3000);
    assert_eq!(hub.events().await.len(), 3000);
    hub.stop().await;
}
}
