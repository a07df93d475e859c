//! The hub on PostgreSQL under what only a shared database brings: two hub processes on one
//! database taking the same batches at once, a hub killed with `kill -9` in the middle of a
//! batch's COPY, and PostgreSQL itself restarted while an edge syncs. Invariant 5 holds through
//! each: the hub ends up holding the edge's log exactly once per `(edge_id, seq)`, nothing
//! lost, nothing doubled. These tests need the PostgreSQL binaries and say so when absent.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zenedge::hub::{self, HubStore};

use crate::support::hubs::{Backing, Store};
use crate::support::{TestDaemon, eventually, postgres};
use crate::sync::{EDGE, Hub, assert_hub_holds_the_log, options, send_orders, status, sync_toml, wait_synced};

/// A PostgreSQL backing of the shared server, or `None` (the test then says why it skips).
fn backing(test: &str) -> Option<Backing> {
    match Store::Postgres.backing() {
        Ok(backing) => Some(backing),
        Err(reason) => {
            postgres::skip(test, &reason);
            None
        }
    }
}

/// A hub on `backing` behind a plain-HTTP listener; its store is its own pool.
async fn serve(store: HubStore) -> (std::net::SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(hub::serve(listener, store, options(), None, shutdown.clone()));
    (addr, shutdown)
}

/// One raw batch POST of `edge`'s events `first..=last` (the envelopes the hub tests use).
async fn post_batch(addr: std::net::SocketAddr, first: u64, last: u64) -> u16 {
    #[derive(serde::Serialize)]
    struct E<'a> {
        seq: u64,
        event_id: uuid::Uuid,
        event_type: &'a str,
        edge_id: &'a str,
    }
    let envelopes: Vec<Vec<u8>> = (first..=last)
        .map(|seq| {
            let e = E { seq, event_id: uuid::Uuid::from_u128(u128::from(seq)), event_type: "Test", edge_id: EDGE };
            rmp_serde::to_vec_named(&e).unwrap()
        })
        .collect();
    let body = zenedge::sync::wire::encode_batch(envelopes.iter().map(Vec::as_slice), 1);
    let head = format!(
        "POST /v1/edges/{EDGE}/events HTTP/1.1\r\nHost: hub\r\nConnection: close\r\ncontent-type: application/msgpack\r\n\
         content-encoding: gzip\r\nzenedge-first-seq: {first}\r\nzenedge-last-seq: {last}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let response = crate::support::http::raw(addr, &[head.into_bytes(), body].concat()).await;
    response.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_database_store_each_batch_once_when_both_receive_it_at_once() {
    let Some(backing) = backing("two_hubs_on_one_database") else { return };
    // Two hub processes' worth of state: each its own pool, listener and notification connection.
    let (a, stop_a) = serve(backing.open().await).await;
    let (b, stop_b) = serve(backing.open().await).await;
    let mut first = 1;
    for round in 0..20u64 {
        let last = first + 9 + round % 7;
        // The same batch to both hubs, three times each, all at once.
        let sends: Vec<_> =
            [a, b, a, b, a, b].into_iter().map(|addr| tokio::spawn(post_batch(addr, first, last))).collect();
        let mut statuses = Vec::new();
        for send in sends {
            statuses.push(send.await.unwrap());
        }
        statuses.sort();
        assert_eq!(statuses, [200, 409, 409, 409, 409, 409], "batch {first}..={last}");
        first = last + 1;
    }
    let store = backing.open().await;
    let held: Vec<u64> = store.events(EDGE, 0, usize::MAX).await.unwrap().into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(held, (1..first).collect::<Vec<_>>(), "every seq once, no gap");
    let (server, url) = backing.postgres().unwrap();
    assert_eq!(server.psql(url, "SELECT count(*) FROM hub_events"), (first - 1).to_string());
    stop_a.cancel();
    stop_b.cancel();
}

/// `zenedge hub --postgres URL` as a child process on `port`.
fn hub_process(url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zenedge"))
        .args(["hub", "--listen", &format!("127.0.0.1:{port}"), "--postgres", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_during_a_batch_s_copy_stores_nothing_of_it_and_the_edge_sends_it_again() {
    let Some(backing) = backing("a_hub_killed_during_a_batch_s_copy") else { return };
    let (server, url) = backing.postgres().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut hub = hub_process(url, port);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("the hub to listen", Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    // Another session inserts seq 5 and holds its transaction open: the hub's COPY of the
    // first batch (1..=20) writes 1..=4, then waits on that row. The kill lands there.
    let mut blocker = Command::new(server.bin().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut sql = blocker.stdin.take().unwrap();
    writeln!(
        sql,
        "BEGIN; INSERT INTO hub_events (edge_id, epoch, seq, event_id, event_type, envelope) \
         VALUES ('{EDGE}', 0, 5, gen_random_uuid(), 'Blocker', '\\x00');"
    )
    .unwrap();
    sql.flush().unwrap();
    let daemon = TestDaemon::start_with(&sync_toml(addr, "")).await;
    send_orders(&daemon, "KILL", 45).await;
    let copying = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY hub_events%' AND wait_event_type = 'Lock'";
    eventually("the hub's COPY to be under way", Duration::from_secs(30), || async {
        server.psql(url, copying) == "1"
    })
    .await;
    hub.kill().unwrap();
    hub.wait().unwrap();
    // The blocker gives way; the killed hub's session finds its client gone in the middle of
    // the COPY and PostgreSQL rolls its transaction back.
    writeln!(sql, "ROLLBACK;").unwrap();
    drop(sql);
    blocker.wait().unwrap();
    let sessions =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY hub_events%'";
    eventually("the killed hub's session to end", Duration::from_secs(30), || async {
        server.psql(url, sessions) == "0"
    })
    .await;
    // Batches committed before the one that was killed stay (the edge may have sent 1..=2
    // alone); of the killed batch, which held seq 5, nothing.
    let through: u64 = server
        .psql(url, &format!("SELECT coalesce(max(stored_through), 0) FROM hub_streams WHERE edge_id = '{EDGE}'"))
        .parse()
        .unwrap();
    assert!(through < 5, "the killed batch held seq 5, yet the hub stands at {through}");
    let rows = server.psql(url, "SELECT count(*), coalesce(max(seq), 0) FROM hub_events");
    assert_eq!(rows, format!("{through}|{through}"), "nothing of the killed batch");

    let mut hub = hub_process(url, port);
    let store = backing.open().await;
    let last = crate::sync::last_seq(&daemon).await;
    eventually("the new hub to hold the whole log", Duration::from_secs(60), || async {
        store.stored_through(EDGE).await.unwrap() >= last
    })
    .await;
    let check = Hub::start_on(backing.clone(), options(), None).await;
    assert_hub_holds_the_log(&daemon, &check, &[]).await;
    check.stop().await;
    daemon.stop().await.unwrap();
    hub.kill().unwrap();
    hub.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_sync_is_503_the_edge_backs_off_and_nothing_is_lost_or_doubled() {
    let server = match postgres::private() {
        Ok(server) => Arc::new(server),
        Err(reason) => return postgres::skip("postgresql_restarted_mid_sync", &reason),
    };
    let hub = Hub::start_on(Backing::on(server.clone()), options(), None).await;
    let daemon = TestDaemon::start_with(&sync_toml(hub.addr, "")).await;
    send_orders(&daemon, "UP", 20).await;
    wait_synced(&daemon, &hub).await;
    server.stop();
    send_orders(&daemon, "DOWN", 30).await;
    eventually("the hub to answer 503 and the edge to back off", Duration::from_secs(30), || async {
        let metrics = crate::support::http::get(hub.addr, "/metrics").await.body;
        let failures = status(&daemon).await["sync"]["consecutive_failures"].as_u64().unwrap_or(0);
        metrics.contains("zenedge_hub_batches_total{outcome=\"unavailable\"}") && failures >= 2
    })
    .await;
    assert!(daemon.get("/metrics").await.body.contains("zenedge_sync_failures_total{kind=\"http_5xx\"}"));
    server.start_again();
    send_orders(&daemon, "AGAIN", 10).await;
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    daemon.stop().await.unwrap();
    hub.stop().await;
}
