//! Upstream sync end to end: the daemon's sync worker against the reference hub (in-process),
//! through a fault proxy or a fault-injecting layer around the hub's router, on both of the
//! hub's stores (redb, and a real PostgreSQL: each test is `name::redb` and `name::postgres`).
//! Each test ends when the hub holds exactly the edge's log: every sequence number once, in
//! order, with the bytes the edge stored.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zenedge::events::Envelope;
use zenedge::hub::{self, HubOptions, HubStore};

use crate::on_both_stores;
use crate::support::hubs::{Backing, Store};

use crate::support::certs::{Leaf, TestPki};
use crate::support::hl7msg::{ack_code, orm};
use crate::support::proxy::{Fault, FaultProxy};
use crate::support::{TestDaemon, eventually};

pub(crate) const EDGE: &str = "e1";

/// The reference hub on 127.0.0.1:0, on a store of either kind.
pub(crate) struct Hub {
    pub(crate) addr: SocketAddr,
    pub(crate) store: HubStore,
    backing: Backing,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub(crate) fn options() -> HubOptions {
    HubOptions::default()
}

impl Hub {
    pub(crate) async fn start(store: Store) -> Hub {
        Hub::start_on(store.backing().unwrap(), options(), None).await
    }

    pub(crate) async fn start_on(backing: Backing, options: HubOptions, tls: Option<Arc<rustls::ServerConfig>>) -> Hub {
        let store = backing.open().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hub::serve(listener, store.clone(), options, tls, shutdown.clone()));
        Hub { addr, store, backing, shutdown, task }
    }

    /// The hub's router behind `layer` (faults decided per request), plain HTTP.
    pub(crate) async fn start_with_layer<F, Fut>(kind: Store, layer: F) -> Hub
    where
        F: Fn(Request<Body>, Next) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Response> + Send + 'static,
    {
        let backing = kind.backing().unwrap();
        let store = backing.open().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = hub::router(store.clone(), options()).layer(middleware::from_fn(layer));
        let token = shutdown.clone();
        let task =
            tokio::spawn(
                async move { axum::serve(listener, app).with_graceful_shutdown(token.cancelled_owned()).await },
            );
        Hub { addr, store, backing, shutdown, task }
    }

    pub(crate) async fn stop(self) -> Backing {
        self.shutdown.cancel();
        let _ = self.task.await;
        drop(self.store);
        self.backing
    }

    pub(crate) async fn stored_through(&self) -> u64 {
        self.store.stored_through(EDGE).await.unwrap()
    }

    /// Every event the hub holds for the edge: (seq, stored bytes).
    pub(crate) async fn events(&self) -> Vec<(u64, Vec<u8>)> {
        self.store.events(EDGE, 0, usize::MAX).await.unwrap()
    }
}

/// The edge's sync settings for a plain-HTTP hub at `addr`, with short retry times so the
/// tests converge quickly.
pub(crate) fn sync_toml(addr: SocketAddr, extra: &str) -> String {
    format!(
        "[sync]\nhub_url = \"http://{addr}\"\nallow_plain_http = true\nretry_base = \"10ms\"\nretry_cap = \"100ms\"\n\
         breaker_failures = 3\nbreaker_open = \"100ms\"\ntimeout = \"1s\"\nconnect_timeout = \"1s\"\nlinger = \"5ms\"\n\
         batch_max_events = 20\n{extra}"
    )
}

pub(crate) async fn send_orders(daemon: &TestDaemon, prefix: &str, n: usize) {
    let mut client = daemon.client().await;
    for i in 0..n {
        let ack = client.send(&orm(&format!("{prefix}{i}"), &format!("ACC-{prefix}{i}"))).await;
        assert_eq!(ack_code(&ack), "AA", "intake must not depend on the hub");
    }
}

pub(crate) async fn last_seq(daemon: &TestDaemon) -> u64 {
    daemon.get("/readyz").await.json()["last_seq"].as_u64().unwrap()
}

/// The edge's log as stored: (seq, envelope bytes), read from its API's view of each event
/// and compared by identity (seq, event id) with what the hub holds.
pub(crate) async fn assert_hub_holds_the_log(daemon: &TestDaemon, hub: &Hub, skipped: &[u64]) {
    let edge = daemon.events().await;
    let held = hub.events().await;
    let edge_ids: Vec<(u64, String)> = edge
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap(), e["event_id"].as_str().unwrap().to_owned()))
        .filter(|(seq, _)| !skipped.contains(seq))
        .collect();
    let hub_ids: Vec<(u64, String)> = held
        .iter()
        .map(|(seq, bytes)| {
            let e = Envelope::from_bytes(bytes).expect("the hub holds envelopes as the edge stored them");
            assert_eq!(e.seq, *seq, "the hub's key is the envelope's seq");
            (e.seq, e.event_id.to_string())
        })
        .collect();
    assert_eq!(hub_ids, edge_ids, "hub and edge differ");
    assert_eq!(hub.stored_through().await, edge.last().map_or(0, |e| e["seq"].as_u64().unwrap()));
}

pub(crate) async fn wait_synced(daemon: &TestDaemon, hub: &Hub) {
    let last = last_seq(daemon).await;
    eventually(&format!("the hub to store through {last}"), Duration::from_secs(30), || async {
        hub.stored_through().await >= last
    })
    .await;
}

pub(crate) async fn status(daemon: &TestDaemon) -> serde_json::Value {
    let r = daemon.get("/api/v1/status").await;
    assert_eq!(r.status, 200);
    r.json()
}

on_both_stores! {
async fn a_hub_that_is_down_for_a_while_gets_everything_once_in_order_when_it_is_back(store: Store) {
    let hub = Hub::start(store).await;
    let proxy = FaultProxy::start(hub.addr, Fault::Refuse).await;
    let daemon = TestDaemon::start_with(&sync_toml(proxy.addr, "")).await;
    send_orders(&daemon, "DOWN", 30).await;
    eventually("the breaker to open", Duration::from_secs(20), || async {
        status(&daemon).await["sync"]["breaker"] == "open"
    })
    .await;
    assert!(proxy.count(|c| &c.refused) >= 3);
    assert_eq!(hub.stored_through().await, 0);
    let lag = status(&daemon).await["sync"]["lag_events"].as_u64().unwrap();
    assert!(lag >= 30, "lag {lag} counts the unsynced events");
    send_orders(&daemon, "STILL", 10).await;
    proxy.set(Fault::Pass);
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    eventually("lag 0 and the breaker closed", Duration::from_secs(10), || async {
        let s = status(&daemon).await;
        s["sync"]["lag_events"] == 0 && s["sync"]["breaker"] == "closed"
    })
    .await;
    // The last error stays for the admin to read, with when it happened and that it cleared.
    let s = status(&daemon).await;
    assert!(s["sync"]["last_error"].as_str().is_some_and(|e| e.starts_with("connect")), "{s}");
    let (at, cleared) =
        (s["sync"]["last_error_at"].as_str().unwrap(), s["sync"]["last_error_cleared_at"].as_str().unwrap());
    assert!(at.parse::<jiff::Timestamp>().unwrap() <= cleared.parse::<jiff::Timestamp>().unwrap(), "{s}");
    let work = tempfile::tempdir().unwrap();
    let config =
        crate::support::config::write_for_daemon(&work.path().join("zenedge.toml"), daemon.dir.path(), daemon.http, None);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.args(["status", "--config"]).arg(&config);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("last error at {at} (")) && text.contains(&format!("cleared at {cleared}): connect")),
        "{text}"
    );
    daemon.stop().await.unwrap();
}
}

on_both_stores! {
async fn a_reply_lost_after_the_hub_stored_the_batch_is_resent_and_held_once(store: Store) {
    let hub = Hub::start(store).await;
    let proxy = FaultProxy::start(hub.addr, Fault::Pass).await;
    let daemon = TestDaemon::start_with(&sync_toml(proxy.addr, "")).await;
    // The edge checks the hub's position before it sends anything; then every answer is cut.
    eventually("the hub's position checked", Duration::from_secs(20), || async {
        !status(&daemon).await["sync"]["last_success_at"].is_null()
    })
    .await;
    proxy.set(Fault::CutResponse);
    send_orders(&daemon, "CUT", 25).await;
    // The hub stores while every answer is cut: the edge learns nothing and must re-send.
    eventually("the hub to store a batch whose answer was cut", Duration::from_secs(20), || async {
        proxy.count(|c| &c.cut) >= 2 && hub.stored_through().await > 0
    })
    .await;
    let cursor = status(&daemon).await["sync"]["cursor"].as_u64().unwrap();
    assert!(cursor < hub.stored_through().await, "edge cursor {cursor} is behind the hub: no answer reached it");
    proxy.set(Fault::Pass);
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    daemon.stop().await.unwrap();
}
}

on_both_stores! {
async fn random_server_errors_and_answers_past_the_timeout_lose_and_duplicate_nothing(store: Store) {
    // Deterministic "random": a counter decides. 1 in 3 requests fails before the hub sees
    // it, 1 in 5 is stored and then answered 502 (the edge must not take it as refused).
    let requests = Arc::new(AtomicU64::new(0));
    let refused_before = Arc::new(AtomicU64::new(0));
    let failed_after = Arc::new(AtomicU64::new(0));
    let (seen, before, after) = (requests.clone(), refused_before.clone(), failed_after.clone());
    let hub = Hub::start_with_layer(store, move |req: Request<Body>, next: Next| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        let (before, after) = (before.clone(), after.clone());
        async move {
            if n % 3 == 1 {
                before.fetch_add(1, Ordering::Relaxed);
                return (StatusCode::SERVICE_UNAVAILABLE, "hub is restarting").into_response();
            }
            let answer = next.run(req).await;
            if n % 5 == 2 {
                after.fetch_add(1, Ordering::Relaxed);
                (StatusCode::BAD_GATEWAY, "proxy error").into_response()
            } else {
                answer
            }
        }
    })
    .await;
    let proxy = FaultProxy::start(hub.addr, Fault::Pass).await;
    let daemon = TestDaemon::start_with(&sync_toml(proxy.addr, "")).await;
    send_orders(&daemon, "ERR", 40).await;
    wait_synced(&daemon, &hub).await;
    // Then slow answers, past the edge's 1 s timeout.
    proxy.set(Fault::Delay(Duration::from_millis(1500)));
    send_orders(&daemon, "SLOW", 10).await;
    eventually("a timed-out batch", Duration::from_secs(20), || async {
        proxy.count(|c| &c.delayed_chunks) >= 2
            && daemon.get("/metrics").await.body.contains("zenedge_sync_failures_total{kind=\"timeout\"}")
    })
    .await;
    proxy.set(Fault::Pass);
    wait_synced(&daemon, &hub).await;
    assert!(refused_before.load(Ordering::Relaxed) >= 1 && failed_after.load(Ordering::Relaxed) >= 1);
    assert!(daemon.get("/metrics").await.body.contains("zenedge_sync_failures_total{kind=\"http_5xx\"}"));
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    daemon.stop().await.unwrap();
}
}

on_both_stores! {
async fn a_poison_event_is_parked_as_a_dead_letter_and_the_rest_flows_on(store: Store) {
    let small = HubOptions { max_event_bytes: 8 << 10, ..HubOptions::default() };
    let hub = Hub::start_on(store.backing().unwrap(), small, None).await;
    let token = "operator-token-0123456789";
    let extra = format!("[http]\noperator_token = \"{token}\"\n");
    let daemon = TestDaemon::start_with(&format!("{}{extra}", sync_toml(hub.addr, ""))).await;
    send_orders(&daemon, "P", 7).await;
    // An order with 20 kB of clinical information: more than this hub takes in one event.
    let mut big = String::from_utf8(orm("PBIG", "ACC-PBIG")).unwrap();
    big.push_str(&format!("NTE|1||{}\r", "x".repeat(20_000)));
    let ack = daemon.client().await.send(big.as_bytes()).await;
    assert_eq!(ack_code(&ack), "AA");
    let poison = last_seq(&daemon).await;
    send_orders(&daemon, "Q", 7).await;
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[poison]).await;
    assert_eq!(hub.store.skipped(EDGE).await.unwrap(), vec![poison]);
    let letters = daemon.get("/api/v1/dead-letters").await.json();
    let items = letters["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{letters}");
    assert_eq!(items[0]["seq"], poison);
    assert_eq!(items[0]["status"], "parked");
    assert!(!items[0]["reason"].as_str().unwrap().is_empty());
    let ready = daemon.get("/readyz").await;
    assert_eq!(ready.status, 200, "intake is fine: still ready");
    assert_eq!(ready.json()["degraded"], true);

    // The hub is fixed (a larger limit); the operator retries the dead letter.
    let backing = hub.stop().await;
    let hub = Hub::start_on(backing, options(), None).await;
    let daemon = {
        let extra = format!("{}{extra}", sync_toml(hub.addr, ""));
        let d = daemon.dir.clone();
        daemon.stop().await.unwrap();
        TestDaemon::start_in(d, &extra).await
    };
    let refused = crate::support::http::post(daemon.http, &format!("/api/v1/dead-letters/{poison}/retry"), None).await;
    assert_eq!(refused.status, 401, "no token, no operator action");
    let retried =
        crate::support::http::post(daemon.http, &format!("/api/v1/dead-letters/{poison}/retry"), Some(token)).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    eventually("the dead letter to be delivered", Duration::from_secs(20), || async {
        daemon.get("/api/v1/dead-letters").await.json()["items"][0]["status"] == "delivered"
    })
    .await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    assert_eq!(hub.store.skipped(EDGE).await.unwrap(), Vec::<u64>::new());
    assert_eq!(daemon.get("/readyz").await.json()["degraded"], false);
    daemon.stop().await.unwrap();
}
}

on_both_stores! {
async fn a_hub_that_lost_events_is_refilled_from_the_edge(store: Store) {
    // The edge is ahead of the hub: the hub was restored from an older copy (here: empty).
    let hub = Hub::start(store).await;
    let daemon = TestDaemon::start_with(&sync_toml(hub.addr, "")).await;
    send_orders(&daemon, "A", 15).await;
    wait_synced(&daemon, &hub).await;
    let extra_dir = daemon.dir.clone();
    daemon.stop().await.unwrap();
    hub.stop().await;
    let fresh = Hub::start(store).await;
    let daemon = TestDaemon::start_in(extra_dir, &sync_toml(fresh.addr, "")).await;
    send_orders(&daemon, "B", 5).await;
    wait_synced(&daemon, &fresh).await;
    assert_hub_holds_the_log(&daemon, &fresh, &[]).await;
    daemon.stop().await.unwrap();
}
}

mod kill_9_mid_sync_then_restart_leaves_the_hub_with_exactly_the_edges_log {
    use super::*;

    #[test]
    fn redb() {
        super::kill_9_body(Store::Redb);
    }

    #[test]
    fn postgres() {
        match crate::support::postgres::shared() {
            Ok(_) => super::kill_9_body(Store::Postgres),
            Err(reason) => crate::support::postgres::skip(module_path!(), &reason),
        }
    }
}

fn kill_9_body(store: Store) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let hub = Hub::start(store).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zenedge.toml");
        crate::support::process::write_config(&config, &dir.path().join("state"));
        let mut text =
            std::fs::read_to_string(&config).unwrap().replace("edge_id = \"e\"", &format!("edge_id = \"{EDGE}\""));
        text.push_str(&sync_toml(hub.addr, ""));
        std::fs::write(&config, text).unwrap();
        let mut acked = 0u64;
        let mut mid_way = 0;
        for round in 0..3 {
            let mut edge = crate::support::process::spawn(&config);
            let target = hub.stored_through().await + 10;
            // Orders keep coming while the hub catches up; the kill lands mid-sync.
            let sender = tokio::spawn({
                let addr = edge.mllp;
                async move {
                    let mut client = crate::support::MllpClient::connect(addr).await;
                    let mut n = 0u64;
                    for i in 0..400 {
                        let message = orm(&format!("K{round}-{i}"), &format!("ACC-K{round}-{i}"));
                        if !client.try_write(&crate::support::mllp::frame(&message)).await {
                            break;
                        }
                        match client.read_ack().await {
                            Some(ack) if ack_code(&ack) == "AA" => n += 1,
                            _ => break,
                        }
                    }
                    n
                }
            });
            eventually("the hub to be mid-way", Duration::from_secs(20), || async {
                hub.stored_through().await >= target
            })
            .await;
            edge.kill();
            let at_kill = hub.stored_through().await;
            acked += sender.await.unwrap();
            if at_kill < acked {
                mid_way += 1;
            }
        }
        println!("{mid_way} of 3 kills landed while the hub was behind the edge");
        let sent = acked;
        let edge = crate::support::process::spawn(&config);
        let last = crate::support::http::get(edge.http, "/readyz").await.json()["last_seq"].as_u64().unwrap();
        assert!(last >= sent, "every acknowledged message is in the log");
        eventually("the hub to hold the whole log", Duration::from_secs(30), || async {
            hub.stored_through().await >= last
        })
        .await;
        let mut edge = edge;
        edge.kill();
        // The edge's log, read straight from its file, against the hub's copy.
        let options = zenedge::log::LogOptions::from_config(&zenedge::config::Config::load(&config).unwrap());
        let log = zenedge::projections::open_log(
            &options,
            zenedge::projections::schema(),
            Arc::new(zenedge::telemetry::Metrics::new()),
            None,
        )
        .unwrap();
        let stored = log.reader().raw_after(0, usize::MAX).unwrap();
        log.close().await.unwrap();
        assert_eq!(stored.len() as u64, last);
        assert_eq!(hub.events().await, stored, "byte for byte, each seq once");
    });
}

on_both_stores! {
/// Mutual TLS end to end, and the refusals an admin will meet: a hub certificate from a CA
/// the edge does not trust, a client certificate for another edge, an expired one.
async fn mutual_tls_delivers_and_refuses_the_wrong_certificates(store: Store) {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (server_cert, server_key) = pki.issue(files.path(), &Leaf::server());
    let tls =
        hub::tls_config(&hub::HubTls { cert: server_cert, key: server_key, client_ca: Some(pki.ca_path()) }).unwrap();
    let hub = Hub::start_on(store.backing().unwrap(), options(), Some(tls)).await;
    let https = |ca: &Path, cert: &Path, key: &Path| {
        format!(
            "[sync]\nhub_url = \"https://localhost:{port}\"\nca_file = {ca:?}\nclient_cert = {cert:?}\n\
             client_key = {key:?}\nretry_base = \"10ms\"\nretry_cap = \"100ms\"\nlinger = \"5ms\"\n",
            port = hub.addr.port(),
            ca = ca.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        )
    };

    // The right certificates: delivered.
    let (cert, key) = pki.issue(files.path(), &Leaf::client(EDGE));
    let daemon = TestDaemon::start_with(&https(&pki.ca_path(), &cert, &key)).await;
    send_orders(&daemon, "TLS", 5).await;
    wait_synced(&daemon, &hub).await;
    assert_hub_holds_the_log(&daemon, &hub, &[]).await;
    let dir = daemon.dir.clone();
    daemon.stop().await.unwrap();

    // A hub certificate the edge cannot verify: TLS failures, nothing sent.
    let before = hub.stored_through().await;
    let daemon = TestDaemon::start_in(dir.clone(), &https(&pki.other_ca_path(), &cert, &key)).await;
    send_orders(&daemon, "UNTRUSTED", 2).await;
    eventually("a TLS failure", Duration::from_secs(20), || async {
        status(&daemon).await["sync"]["last_error"].as_str().is_some_and(|e| e.contains("certificate"))
    })
    .await;
    assert!(daemon.get("/metrics").await.body.contains("zenedge_sync_failures_total{kind=\"tls\"}"));
    assert_eq!(hub.stored_through().await, before);
    daemon.stop().await.unwrap();

    // A certificate for another edge: the hub refuses to file our events under it.
    let (other, other_key) = pki.issue(files.path(), &Leaf::client("e2"));
    let daemon = TestDaemon::start_in(dir.clone(), &https(&pki.ca_path(), &other, &other_key)).await;
    eventually("the hub's refusal", Duration::from_secs(20), || async {
        status(&daemon).await["sync"]["last_error"].as_str().is_some_and(|e| e.contains("e2"))
    })
    .await;
    assert_eq!(hub.stored_through().await, before);
    assert_eq!(hub.store.stored_through("e2").await.unwrap(), 0);
    daemon.stop().await.unwrap();

    // An expired client certificate: the daemon does not start, and says why.
    let (expired, expired_key) = pki.expired_client(files.path(), EDGE);
    let config = crate::support::daemon::test_config(dir.path(), &https(&pki.ca_path(), &expired, &expired_key));
    let listeners = zenedge::app::Listeners {
        mllp: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        mllp_tls: None,
        dicom: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        dicom_tls: None,
        http: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let err = zenedge::app::run(config, listeners, CancellationToken::new(), Default::default()).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("sync.client_cert") && message.contains("expired"), "{message}");
}
}
