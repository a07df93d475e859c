//! The reference hub stores each edge's events exactly once per `(edge_id, seq)`, in order and
//! byte for byte, answers `200` only for what it stored, `409` with its `stored_through` for
//! anything out of sequence, `4xx` for a batch it can never take; it keeps what it stored
//! across a restart; and over mTLS an edge's certificate opens that edge's stream and no other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use zenedge::hub::{self, HubOptions, HubStore, HubTls};
use zenedge::sync::wire;

use crate::on_both_stores;
use crate::support::certs::{Leaf, TestPki};
use crate::support::hubs::{Backing, Store};
use crate::support::process::ChildLines;

const EDGE: &str = "edge-1";

// ---------------------------------------------------------------------------------------------
// Envelopes and batches

#[derive(Serialize)]
struct TestEnvelope<'a> {
    seq: u64,
    event_id: uuid::Uuid,
    event_type: &'a str,
    edge_id: &'a str,
    data: TestData,
}

#[derive(Serialize)]
struct TestData {
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    note: String,
}

/// An envelope of `edge` with `seq` and `payload` bytes of payload, as the edge stores it.
fn envelope_sized(edge: &str, seq: u64, payload: usize) -> Vec<u8> {
    envelope_with_id(edge, seq, u128::from(seq), payload)
}

/// An envelope whose event id is `id` (another history's event under the same seq).
fn envelope_with_id(edge: &str, seq: u64, id: u128, payload: usize) -> Vec<u8> {
    let e = TestEnvelope {
        seq,
        event_id: uuid::Uuid::from_u128(id),
        event_type: "HL7MessageReceived",
        edge_id: edge,
        data: TestData { raw: vec![b'x'; payload], note: format!("event {seq}") },
    };
    rmp_serde::to_vec_named(&e).unwrap()
}

fn envelope(edge: &str, seq: u64) -> Vec<u8> {
    envelope_sized(edge, seq, 40)
}

fn envelopes(edge: &str, seqs: impl IntoIterator<Item = u64>) -> Vec<Vec<u8>> {
    seqs.into_iter().map(|s| envelope(edge, s)).collect()
}

/// One batch: its headers and its gzip'ed body.
struct Batch {
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Batch {
    fn new(first: u64, last: u64, envelopes: &[Vec<u8>], skipped: &[u64]) -> Batch {
        let mut headers = batch_headers(first, last);
        if !skipped.is_empty() {
            headers.push((wire::SKIPPED, wire::format_skipped(skipped)));
        }
        Batch { headers, body: wire::encode_batch(envelopes.iter().map(Vec::as_slice), 1) }
    }

    /// `first..=last` of `EDGE`, nothing skipped.
    fn range(first: u64, last: u64) -> Batch {
        Batch::new(first, last, &envelopes(EDGE, first..=last), &[])
    }

    fn redelivery(envelope: Vec<u8>, seq: u64) -> Batch {
        let mut batch = Batch::new(seq, seq, &[envelope], &[]);
        batch.headers.push((wire::REDELIVERY, "1".into()));
        batch
    }
}

fn batch_headers(first: u64, last: u64) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", wire::CONTENT_TYPE.into()),
        ("content-encoding", "gzip".into()),
        (wire::FIRST_SEQ, first.to_string()),
        (wire::LAST_SEQ, last.to_string()),
    ]
}

// ---------------------------------------------------------------------------------------------
// A hub on 127.0.0.1:0 and a raw HTTP/1.1 client

struct RunningHub {
    addr: SocketAddr,
    store: HubStore,
    backing: Backing,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningHub {
    async fn start(store: Store, options: HubOptions) -> RunningHub {
        RunningHub::start_on(store.backing().unwrap(), options, None).await
    }

    async fn start_on(backing: Backing, options: HubOptions, tls: Option<Arc<rustls::ServerConfig>>) -> RunningHub {
        let store = backing.open().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hub::serve(listener, store.clone(), options, tls, shutdown.clone()));
        RunningHub { addr, store, backing, shutdown, task }
    }

    /// Stops the hub, waits for it, and gives back its storage.
    async fn stop(self) -> Backing {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the hub stops after shutdown")
            .unwrap()
            .unwrap();
        drop(self.store);
        self.backing
    }

    async fn post(&self, edge: &str, batch: &Batch) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        exchange(&mut stream, "POST", &wire::events_path(edge), &batch.headers, &batch.body).await.unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        exchange(&mut stream, "GET", path, &[], &[]).await.unwrap()
    }

    async fn stored(&self, edge: &str) -> Vec<(u64, Vec<u8>)> {
        self.store.events(edge, 0, usize::MAX).await.unwrap()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request with `Connection: close`; the reply read to the end of the stream.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<Reply> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        // A TLS peer may close without close_notify once it has answered.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no HTTP response: {text:?}")))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    Ok(Reply { status, body: body.to_owned() })
}

fn options() -> HubOptions {
    HubOptions { max_batch_bytes: 1 << 20, max_event_bytes: 64 << 10, ..HubOptions::default() }
}

// ---------------------------------------------------------------------------------------------
// The contract

on_both_stores! {
async fn a_batch_is_stored_and_read_back_byte_for_byte(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    let sent = envelopes(EDGE, 1..=3);
    let reply = hub.post(EDGE, &Batch::new(1, 3, &sent, &[])).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let last = serde_json::json!({ "seq": 3, "event_id": uuid::Uuid::from_u128(3).to_string() });
    assert_eq!(reply.json(), serde_json::json!({ "stored_through": 3, "last_event": last }));
    assert_eq!(hub.stored(EDGE).await, (1..=3).zip(sent.clone()).collect::<Vec<_>>());

    let summary = hub.get("/v1/edges/edge-1").await.json();
    assert_eq!(
        summary,
        serde_json::json!({
            "edge_id": EDGE, "epoch": 0, "stored_through": 3, "events": 3, "skipped": [], "last_event": last,
            "fork_at": 0, "epochs": [{ "epoch": 0, "fork_at": 0, "stored_through": 3, "events": 3 }],
        })
    );
    let page = hub.get("/v1/edges/edge-1/events?after=1").await.json();
    assert_eq!(page["stored_through"], 3);
    assert_eq!(page["next"], serde_json::Value::Null);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|i| i["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 3]);
    let event = &items[0]["event"];
    assert_eq!(event["event_type"], "HL7MessageReceived");
    assert_eq!(event["event_id"], uuid::Uuid::from_u128(2).to_string());
    assert_eq!(event["data"]["note"], "event 2");
    // Binary payloads read back as base64: 40 × "x".
    assert_eq!(event["data"]["raw"], format!("{}eA==", "eHh4".repeat(13)));
}
}

on_both_stores! {
async fn the_same_batch_again_is_409_with_stored_through_and_nothing_duplicated(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    assert_eq!(hub.post(EDGE, &Batch::range(1, 3)).await.status, 200);
    let again = hub.post(EDGE, &Batch::range(1, 3)).await;
    assert_eq!(again.status, 409, "{again:?}");
    let refusal: wire::Refusal = serde_json::from_str(&again.body).unwrap();
    assert_eq!(refusal.stored_through, Some(3));
    assert!(refusal.error.contains("expected first = 4"), "{refusal:?}");
    assert_eq!(hub.stored(EDGE).await.len(), 3);
    assert_eq!(hub.get("/v1/edges/edge-1").await.json()["events"], 3);
}
}

on_both_stores! {
async fn a_gap_or_an_overlap_is_409_and_stores_nothing(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    assert_eq!(hub.post(EDGE, &Batch::range(1, 3)).await.status, 200);
    for (first, last) in [(5, 6), (2, 5), (3, 3)] {
        let reply = hub.post(EDGE, &Batch::range(first, last)).await;
        assert_eq!(reply.status, 409, "{first}..={last}: {reply:?}");
        assert_eq!(reply.json()["stored_through"], 3);
    }
    // Out of sequence is answered before the body is looked at.
    let mut replay = Batch::range(1, 1);
    replay.body = b"not even gzip".to_vec();
    assert_eq!(hub.post(EDGE, &replay).await.status, 409);
    assert_eq!(hub.store.stored_through(EDGE).await.unwrap(), 3);
    assert_eq!(hub.stored(EDGE).await.len(), 3);
    assert_eq!(hub.post(EDGE, &Batch::range(4, 6)).await.json()["stored_through"], 6);
}
}

/// `(name, value)` headers of a batch whose predecessor is `prev`.
fn linked(mut batch: Batch, prev: u128) -> Batch {
    batch.headers.push((wire::PREV_EVENT_ID, uuid::Uuid::from_u128(prev).to_string()));
    batch
}

/// POSTs a JSON body to `path`.
async fn post_json(hub: &RunningHub, path: &str, body: serde_json::Value) -> Reply {
    let mut stream = TcpStream::connect(hub.addr).await.unwrap();
    let headers = [("content-type", "application/json".to_owned())];
    exchange(&mut stream, "POST", path, &headers, body.to_string().as_bytes()).await.unwrap()
}

on_both_stores! {
async fn a_batch_after_another_event_is_409_and_a_new_epoch_keeps_both_histories_readable(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    assert_eq!(hub.post(EDGE, &Batch::range(1, 3)).await.status, 200);
    // The chain: event 3 on the hub is not this batch's predecessor.
    let other_four = vec![envelope_with_id(EDGE, 4, 1004, 40)];
    let refused = hub.post(EDGE, &linked(Batch::new(4, 4, &other_four, &[]), 1003)).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    let refusal: wire::Refusal = serde_json::from_str(&refused.body).unwrap();
    assert!(refusal.error.contains("diverged"), "{refusal:?}");
    assert_eq!((refusal.stored_through, refusal.seq), (Some(3), Some(3)));
    let held = wire::EventRef { seq: 3, event_id: uuid::Uuid::from_u128(3) };
    assert_eq!(refusal.last_event, Some(Some(held)));
    assert_eq!(hub.store.stored_through(EDGE).await.unwrap(), 3, "nothing stored");

    // A new epoch after seq 2, the other history's 3 and 4 in it.
    let fork = serde_json::json!({ "parent": 0, "fork_at": 2, "fork_event_id": uuid::Uuid::from_u128(2).to_string() });
    let path = format!("/v1/edges/{EDGE}/epochs");
    let created = post_json(&hub, &path, fork.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json(), serde_json::json!({ "epoch": 1, "parent": 0, "fork_at": 2, "stored_through": 2 }));
    assert_eq!(post_json(&hub, &path, fork).await.status, 200, "the same request again: the same epoch");
    let wrong = serde_json::json!({ "parent": 0, "fork_at": 2, "fork_event_id": uuid::Uuid::from_u128(9).to_string() });
    assert_eq!(post_json(&hub, &path, wrong).await.status, 409, "the parent holds another event at 2");
    let beyond = serde_json::json!({ "parent": 0, "fork_at": 7 });
    assert_eq!(post_json(&hub, &path, beyond).await.status, 409, "beyond the parent");
    let other: Vec<_> = (3..=4).map(|s| envelope_with_id(EDGE, s, 1000 + u128::from(s), 40)).collect();
    let batch = linked(Batch::new(3, 4, &other, &[]), 2);
    let mut stream = TcpStream::connect(hub.addr).await.unwrap();
    let stored =
        exchange(&mut stream, "POST", &format!("/v1/edges/{EDGE}/epochs/1/events"), &batch.headers, &batch.body)
            .await
            .unwrap();
    assert_eq!(stored.status, 200, "{stored:?}");
    assert_eq!(stored.json()["last_event"]["event_id"], uuid::Uuid::from_u128(1004).to_string());

    // Both histories read back whole; epoch 0 untouched.
    let ids = |page: &serde_json::Value| -> Vec<(u64, u64, String)> {
        let items = page["items"].as_array().unwrap();
        items
            .iter()
            .map(|i| {
                let id = i["event"]["event_id"].as_str().unwrap().to_owned();
                (i["seq"].as_u64().unwrap(), i["epoch"].as_u64().unwrap(), id)
            })
            .collect()
    };
    let id = |n: u128| uuid::Uuid::from_u128(n).to_string();
    let first = hub.get(&format!("/v1/edges/{EDGE}/events")).await.json();
    assert_eq!(ids(&first), [(1, 0, id(1)), (2, 0, id(2)), (3, 0, id(3))]);
    let second = hub.get(&format!("/v1/edges/{EDGE}/epochs/1/events")).await.json();
    assert_eq!(ids(&second), [(1, 0, id(1)), (2, 0, id(2)), (3, 1, id(1003)), (4, 1, id(1004))]);
    let position = hub.get(&format!("/v1/edges/{EDGE}/epochs/1?at=2")).await.json();
    assert_eq!((position["stored_through"].as_u64(), position["parent"].as_u64()), (Some(4), Some(0)));
    assert_eq!(position["event_at"], serde_json::json!({ "seq": 2, "event_id": id(2) }));
    let listed = hub.get(&format!("/v1/edges/{EDGE}")).await.json();
    assert_eq!(
        listed["epochs"][1],
        serde_json::json!({ "epoch": 1, "parent": 0, "fork_at": 2, "stored_through": 4, "events": 2 })
    );
    assert_eq!(hub.get(&format!("/v1/edges/{EDGE}/epochs/7")).await.status, 404);
    let mut stream = TcpStream::connect(hub.addr).await.unwrap();
    let nowhere = format!("/v1/edges/{EDGE}/epochs/7/events");
    let reply = exchange(&mut stream, "POST", &nowhere, &batch.headers, &batch.body).await.unwrap();
    assert_eq!(reply.status, 404, "{reply:?}");
}
}

on_both_stores! {
async fn edges_have_separate_streams(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    assert_eq!(hub.post(EDGE, &Batch::range(1, 3)).await.status, 200);
    let other = Batch::new(1, 2, &envelopes("edge-2", 1..=2), &[]);
    assert_eq!(hub.post("edge-2", &other).await.json()["stored_through"], 2);
    assert_eq!(hub.store.stored_through(EDGE).await.unwrap(), 3);
    assert_eq!(hub.store.stored_through("edge-2").await.unwrap(), 2);
    // An envelope of edge-2 in edge-1's stream is refused.
    let misplaced = Batch::new(4, 4, &envelopes("edge-2", [4]), &[]);
    let reply = hub.post(EDGE, &misplaced).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.json()["seq"], 4);
}
}

on_both_stores! {
async fn skipped_events_are_recorded_and_a_redelivery_is_stored_once(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    let batch = Batch::new(1, 4, &envelopes(EDGE, [1, 3]), &[2, 4]);
    assert_eq!(hub.post(EDGE, &batch).await.json()["stored_through"], 4);
    assert_eq!(hub.store.skipped(EDGE).await.unwrap(), vec![2, 4]);
    assert_eq!(hub.get("/v1/edges/edge-1").await.json()["skipped"], serde_json::json!([2, 4]));

    let redelivered = hub.post(EDGE, &Batch::redelivery(envelope(EDGE, 2), 2)).await;
    assert_eq!(redelivered.status, 200, "{redelivered:?}");
    assert_eq!(redelivered.json()["stored_through"], 4);
    assert_eq!(hub.store.skipped(EDGE).await.unwrap(), vec![4]);
    assert_eq!(hub.stored(EDGE).await.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(hub.stored(EDGE).await[1].1, envelope(EDGE, 2));

    // Again: answered, nothing written.
    let again = hub.post(EDGE, &Batch::redelivery(envelope(EDGE, 2), 2)).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(hub.stored(EDGE).await.len(), 3);
    // An event stored in sequence counts as stored too.
    assert_eq!(hub.post(EDGE, &Batch::redelivery(envelope(EDGE, 3), 3)).await.status, 200);
    // Beyond stored_through, or never skipped: 409.
    let beyond = hub.post(EDGE, &Batch::redelivery(envelope(EDGE, 9), 9)).await;
    assert_eq!(beyond.status, 409, "{beyond:?}");
    assert_eq!(beyond.json()["stored_through"], 4);
    assert_eq!(hub.get("/v1/edges/edge-1").await.json()["events"], 3);
}
}

on_both_stores! {
async fn a_batch_with_an_oversized_event_is_422_naming_it_and_stores_nothing(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    let mut sent = envelopes(EDGE, 1..=5);
    sent[2] = envelope_sized(EDGE, 3, 100 << 10);
    let reply = hub.post(EDGE, &Batch::new(1, 5, &sent, &[])).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    let refusal: wire::Refusal = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(refusal.seq, Some(3));
    assert!(refusal.error.contains("event 3"), "{refusal:?}");
    assert!(hub.stored(EDGE).await.is_empty());
    assert_eq!(hub.store.stored_through(EDGE).await.unwrap(), 0);
}
}

on_both_stores! {
async fn a_gzip_bomb_or_an_oversized_body_is_413(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    // 8 MiB of one envelope that compresses to a few KiB: expands beyond max_batch_bytes.
    let mut bomb = Batch::new(1, 1, &[envelope_sized(EDGE, 1, 8 << 20)], &[]);
    bomb.body = wire::encode_batch([envelope_sized(EDGE, 1, 8 << 20).as_slice()].into_iter(), 9);
    assert!(bomb.body.len() < 64 << 10, "{}", bomb.body.len());
    let reply = hub.post(EDGE, &bomb).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(reply.json()["error"].as_str().unwrap().contains("expands beyond"), "{reply:?}");

    let mut huge = Batch::range(1, 1);
    huge.body = vec![0x1f; hub::routes::compressed_limit(options().max_batch_bytes) + 1];
    let reply = hub.post(EDGE, &huge).await;
    assert_eq!(reply.status, 413, "{reply:?}");
    assert!(hub.stored(EDGE).await.is_empty());
}
}

on_both_stores! {
async fn garbage_and_bad_headers_are_400_and_a_wrong_media_type_415(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    let mut garbage = Batch::range(1, 1);
    garbage.body = b"this is not gzip".to_vec();
    let reply = hub.post(EDGE, &garbage).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.json()["error"].as_str().unwrap().contains("gzip"));

    let mut not_msgpack = Batch::range(1, 1);
    not_msgpack.body = wire::encode_batch([&[0xc1u8][..]].into_iter(), 1);
    assert_eq!(hub.post(EDGE, &not_msgpack).await.status, 400);

    let mut no_range = Batch::range(1, 1);
    no_range.headers.retain(|(name, _)| *name != wire::LAST_SEQ);
    let reply = hub.post(EDGE, &no_range).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains(wire::LAST_SEQ));

    let mut garbled = Batch::range(1, 1);
    garbled.headers.push((wire::SKIPPED, "3,1".into()));
    assert_eq!(hub.post(EDGE, &garbled).await.status, 400);

    let mut json = Batch::range(1, 1);
    json.headers[0].1 = "application/json".into();
    assert_eq!(hub.post(EDGE, &json).await.status, 415);
    let mut plain = Batch::range(1, 1);
    plain.headers.retain(|(name, _)| *name != "content-encoding");
    assert_eq!(hub.post(EDGE, &plain).await.status, 415);

    assert_eq!(hub.post("edge%201", &Batch::range(1, 1)).await.status, 400);
    assert_eq!(hub.post(&"x".repeat(65), &Batch::range(1, 1)).await.status, 400);
    assert!(hub.stored(EDGE).await.is_empty());
    // And the stream is still open for the right batch.
    assert_eq!(hub.post(EDGE, &Batch::range(1, 1)).await.status, 200);
}
}

on_both_stores! {
async fn read_back_pages_with_after_and_limit(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    assert_eq!(hub.post(EDGE, &Batch::range(1, 5)).await.status, 200);
    let first = hub.get("/v1/edges/edge-1/events?limit=2").await.json();
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], 2);
    let last = hub.get("/v1/edges/edge-1/events?after=4&limit=2").await.json();
    assert_eq!(last["items"][0]["seq"], 5);
    assert_eq!(last["next"], serde_json::Value::Null);
    assert_eq!(hub.get("/v1/edges/edge-1/events?limit=1001").await.status, 400);
    assert_eq!(hub.get("/v1/edges/edge-1/events?after=x").await.status, 400);
    // An edge the hub never heard from: 404, so the edge can tell "nothing" from "at zero".
    let unknown = hub.get("/v1/edges/nobody").await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert!(unknown.json()["error"].as_str().unwrap().contains("nobody"), "{unknown:?}");
    assert_eq!(hub.get("/healthz").await.status, 200);
    assert_eq!(hub.get("/v2/elsewhere").await.status, 404);
}
}

on_both_stores! {
async fn concurrent_deliveries_of_one_batch_store_it_once(store: Store) {
    let hub = Arc::new(RunningHub::start(store, options()).await);
    let batch = Arc::new(Batch::range(1, 50));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (hub, batch) = (hub.clone(), batch.clone());
            tokio::spawn(async move { hub.post(EDGE, &batch).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [vec![200], vec![409; 7]].concat());
    assert_eq!(hub.stored(EDGE).await.len(), 50);
    assert_eq!(hub.get("/v1/edges/edge-1").await.json()["events"], 50);
}
}

on_both_stores! {
async fn a_restarted_hub_keeps_stored_through(store: Store) {
    let hub = RunningHub::start(store, options()).await;
    let batch = Batch::new(1, 3, &envelopes(EDGE, [1, 2]), &[3]);
    assert_eq!(hub.post(EDGE, &batch).await.status, 200);
    let backing = hub.stop().await;

    let hub = RunningHub::start_on(backing, options(), None).await;
    assert_eq!(hub.store.stored_through(EDGE).await.unwrap(), 3);
    assert_eq!(hub.store.skipped(EDGE).await.unwrap(), vec![3]);
    let replay = hub.post(EDGE, &Batch::range(1, 3)).await;
    assert_eq!(replay.status, 409);
    assert_eq!(replay.json()["stored_through"], 3);
    assert_eq!(hub.post(EDGE, &Batch::range(4, 4)).await.status, 200);
    assert_eq!(hub.stored(EDGE).await.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2, 4]);
}
}

// ---------------------------------------------------------------------------------------------
// mTLS

struct TlsHub {
    hub: RunningHub,
    pki: TestPki,
    files: tempfile::TempDir,
}

async fn tls_hub() -> TlsHub {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = pki.server(files.path());
    let config = hub::tls_config(&HubTls { cert, key, client_ca: Some(pki.ca_path()) }).unwrap();
    let hub = RunningHub::start_on(Store::Redb.backing().unwrap(), options(), Some(config)).await;
    TlsHub { hub, pki, files }
}

fn pem_chain(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(path).unwrap().map(Result::unwrap).collect()
}

/// A TLS client trusting the test CA, presenting `client` (certificate, key) if given.
async fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_chain(ca) {
        roots.add(cert).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(pem_chain(cert), rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector.connect("localhost".try_into().unwrap(), tcp).await
}

/// A batch for `path_edge` over TLS with `client`; `Err` when the connection was refused.
async fn tls_post(hub: &TlsHub, client: Option<&(PathBuf, PathBuf)>, path_edge: &str) -> std::io::Result<Reply> {
    let mut stream = tls_connect(hub.hub.addr, &hub.pki.ca_path(), client).await?;
    let batch = Batch::new(1, 1, &envelopes(path_edge, [1]), &[]);
    exchange(&mut stream, "POST", &wire::events_path(path_edge), &batch.headers, &batch.body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cross_edge_feed_is_closed_to_edge_certificates_and_open_to_a_consumer_s() {
    let hub = tls_hub().await;
    let edge = hub.pki.client(hub.files.path(), EDGE);
    let mut stream = tls_connect(hub.hub.addr, &hub.pki.ca_path(), Some(&edge)).await.unwrap();
    let reply = exchange(&mut stream, "GET", "/v1/events", &[], &[]).await.unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(reply.json()["error"].as_str().unwrap().contains(hub::CONSUMER_PREFIX), "{reply:?}");
    let consumer = hub.pki.client(hub.files.path(), "consumer:reporting");
    let mut stream = tls_connect(hub.hub.addr, &hub.pki.ca_path(), Some(&consumer)).await.unwrap();
    let reply = exchange(&mut stream, "GET", "/v1/events", &[], &[]).await.unwrap();
    // Let through; this hub's store (redb) has no feed.
    assert_eq!(reply.status, 501, "{reply:?}");
    assert!(reply.json()["error"].as_str().unwrap().contains("PostgreSQL"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_trickles_its_headers_is_disconnected() {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = pki.server(files.path());
    let config = hub::tls_config(&HubTls { cert, key, client_ca: Some(pki.ca_path()) }).unwrap();
    let quick = HubOptions { header_timeout: Duration::from_millis(300), ..options() };
    let hub = RunningHub::start_on(Store::Redb.backing().unwrap(), quick, Some(config)).await;
    let client = pki.client(files.path(), EDGE);
    let mut stream = tls_connect(hub.addr, &pki.ca_path(), Some(&client)).await.unwrap();
    stream.write_all(b"POST /v1/edges/edge-1/events HTTP/1.1\r\nHost: hub\r\n").await.unwrap();
    stream.flush().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the hub closes a connection whose headers do not arrive in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_certificate_writes_its_own_stream() {
    let hub = tls_hub().await;
    let client = hub.pki.client(hub.files.path(), EDGE);
    let reply = tls_post(&hub, Some(&client), EDGE).await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(hub.hub.store.stored_through(EDGE).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_certificate_cannot_touch_another_edges_stream() {
    let hub = tls_hub().await;
    let client = hub.pki.client(hub.files.path(), EDGE);
    let reply = tls_post(&hub, Some(&client), "edge-2").await.unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.json()["error"], "certificate is for edge edge-1, not edge-2");
    assert_eq!(hub.hub.store.stored_through("edge-2").await.unwrap(), 0);
    let mut stream = tls_connect(hub.hub.addr, &hub.pki.ca_path(), Some(&client)).await.unwrap();
    let read = exchange(&mut stream, "GET", "/v1/edges/edge-2/events", &[], &[]).await.unwrap();
    assert_eq!(read.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_name_equal_to_the_edge_id_names_the_edge_too() {
    let hub = tls_hub().await;
    let leaf = Leaf { stem: "san-only".into(), common_name: None, ..Leaf::client(EDGE) };
    let client = hub.pki.issue(hub.files.path(), &leaf);
    assert_eq!(tls_post(&hub, Some(&client), EDGE).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_valid_certificate_are_refused_at_the_handshake() {
    let hub = tls_hub().await;
    let unknown = hub.pki.unknown_ca_client(hub.files.path(), EDGE);
    let expired = hub.pki.expired_client(hub.files.path(), EDGE);
    for (what, client) in [("no certificate", None), ("unknown CA", Some(&unknown)), ("expired", Some(&expired))] {
        let result = tls_post(&hub, client, EDGE).await;
        assert!(result.is_err(), "{what}: {result:?}");
    }
    assert_eq!(hub.hub.store.stored_through(EDGE).await.unwrap(), 0);
    // A client that trusts another CA does not take the hub's certificate either.
    let client = hub.pki.client(hub.files.path(), EDGE);
    assert!(tls_connect(hub.hub.addr, &hub.pki.other_ca_path(), Some(&client)).await.is_err());
    // The hub still serves a valid edge afterwards.
    assert_eq!(tls_post(&hub, Some(&client), EDGE).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stalls_in_the_handshake_is_disconnected() {
    let hub = tls_hub().await;
    let started = tokio::time::Instant::now();
    let mut stalled = TcpStream::connect(hub.hub.addr).await.unwrap();
    // Paused time moves on only while everything waits: the hub's handshake deadline passes.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(hub::server::HANDSHAKE_TIMEOUT * 6, stalled.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the stalled connection is still open: {read:?}");
    assert!(started.elapsed() >= hub::server::HANDSHAKE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_tls_connections_and_serve_returns() {
    let hub = tls_hub().await;
    let client = hub.pki.client(hub.files.path(), EDGE);
    let mut idle = tls_connect(hub.hub.addr, &hub.pki.ca_path(), Some(&client)).await.unwrap();
    // A keep-alive request, answered; the connection then stays open and idle.
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let TlsHub { hub, pki: _pki, files: _files } = hub;
    hub.stop().await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was left open");
}

#[test]
fn unusable_tls_files_are_named_in_the_error() {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = pki.server(files.path());
    let (_, other_key) = pki.client(files.path(), EDGE);
    let garbage = files.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = files.path().join("missing.pem");
    let cases = [
        (HubTls { cert: garbage.clone(), key: key.clone(), client_ca: None }, &garbage),
        (HubTls { cert: missing.clone(), key: key.clone(), client_ca: None }, &missing),
        (HubTls { cert: cert.clone(), key: garbage.clone(), client_ca: None }, &garbage),
        (HubTls { cert: cert.clone(), key: other_key.clone(), client_ca: None }, &other_key),
        (HubTls { cert: cert.clone(), key: key.clone(), client_ca: Some(garbage.clone()) }, &garbage),
    ];
    for (tls, file) in cases {
        let error = hub::tls_config(&tls).unwrap_err().to_string();
        assert!(error.starts_with(&file.display().to_string()), "{tls:?}: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// The binary

fn zenedge_hub(state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.arg("hub").arg("--listen").arg("127.0.0.1:0").arg("--state-dir").arg(state);
    command
}

#[test]
fn the_binary_exits_78_naming_a_bad_certificate_file() {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (_, key) = pki.server(files.path());
    let bad = files.path().join("hub-cert.pem");
    std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n").unwrap();
    let out = zenedge_hub(&files.path().join("state"))
        .arg("--tls-cert")
        .arg(&bad)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(!files.path().join("state").exists(), "nothing is created before the files are checked");
}

#[test]
fn the_binary_serves_tls_logs_refused_handshakes_and_exits_0_on_sigterm() {
    let pki = TestPki::new();
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = pki.server(files.path());
    let mut child = zenedge_hub(&files.path().join("state"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--client-ca")
        .arg(pki.ca_path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = ChildLines::new(child.stderr.take().unwrap());
    let listening = stderr.wait_for("hub is listening", Duration::from_secs(30));
    assert!(listening.contains("tls") && listening.contains("on"), "{listening}");
    let start = listening.find("address=").expect("address in the start line") + "address=".len();
    let addr: SocketAddr = listening[start..].split_whitespace().next().unwrap().parse().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = runtime.block_on(async {
        match tls_connect(addr, &pki.ca_path(), None).await {
            Ok(mut stream) => exchange(&mut stream, "GET", "/v1/edges/edge-1", &[], &[]).await.is_err(),
            Err(_) => true,
        }
    });
    assert!(refused, "a client without a certificate was served");
    let warning = stderr.wait_for("TLS handshake refused", Duration::from_secs(30));
    assert!(warning.contains("WARN") && warning.contains("peer=127.0.0.1:"), "{warning}");

    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let (tx, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let exit = exited.recv_timeout(Duration::from_secs(30)).expect("the hub stops after SIGTERM").unwrap();
    assert_eq!(exit.code(), Some(0), "{:#?}", stderr.seen);
}
