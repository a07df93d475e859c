//! `hub-load` and `feed-read`: the hub under many edges, and its consumers' read rate.
//!
//! `hub-load` plays `--edges` edges at once, each taking `--rate` events/s and syncing them as
//! the edge's worker does (one batch in flight, a batch that is not full lingers up to
//! `--linger` for more, gzip level 1, the contract's headers and chain), each over mutual TLS
//! with its own certificate (`DIR/edge-N.pem`, CN `edge-N`). An event's latency runs from the
//! moment the virtual edge takes it (where the real edge sends its ACK) to the hub's `200` for
//! its batch (the hub has committed it). It leaves out the real edge's own log commit and
//! read, which the single-edge `sync-lag` figure includes.
//!
//! With `--consumer CERT,KEY`, a consumer long-polls `GET /v1/events?wait=` meanwhile and
//! notes, per event, the time from its `recorded_at` to the moment it read it.
//!
//! `feed-read` reads the whole cross-edge feed from the start, 1,000 events a page, and
//! reports events/s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{BoxError, MAX_LATENCY_US};

#[derive(clap::Args, Debug, Clone)]
pub struct HubLoadArgs {
    /// The hub's base URL (https://).
    #[arg(long)]
    hub: String,
    /// The CA bundle of the hub's certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Directory of the edges' certificates: edge-1.pem/edge-1.key … edge-N.
    #[arg(long)]
    certs: PathBuf,
    #[arg(long, default_value_t = 20)]
    edges: u32,
    /// Events/s each edge takes.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The sync's linger (the edge's default is 20 ms).
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// A consumer's certificate and key (CN consumer:…), "CERT,KEY": long-polls the feed.
    #[arg(long)]
    consumer: Option<String>,
    /// Approximate envelope size in bytes.
    #[arg(long, default_value_t = 900)]
    size: usize,
}

#[derive(clap::Args, Debug)]
pub struct FeedReadArgs {
    #[arg(long)]
    hub: String,
    #[arg(long)]
    ca: PathBuf,
    /// The consumer's certificate and key, "CERT,KEY".
    #[arg(long)]
    consumer: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    seq: u64,
    event_id: uuid::Uuid,
    event_type: &'a str,
    event_version: u32,
    occurred_at: jiff::Timestamp,
    recorded_at: jiff::Timestamp,
    tenant_id: &'a str,
    hospital_id: &'a str,
    edge_id: &'a str,
    aggregate: Aggregate<'a>,
    data: Data,
}

#[derive(Serialize)]
struct Aggregate<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: String,
}

#[derive(Serialize)]
struct Data {
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    patient_id: String,
    accession_number: String,
}

fn agent(hub: &str, ca: &std::path::Path, cert: PathBuf, key: PathBuf) -> Result<ureq::Agent, BoxError> {
    let endpoint = zenedge::config::HubEndpoint {
        url: hub.trim_end_matches('/').to_owned(),
        ca_file: Some(ca.to_owned()),
        client_cert: Some(cert),
        client_key: Some(key),
    };
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .proxy(None);
    if let Some(tls) = zenedge::sync::tls::load(&endpoint, jiff::Timestamp::now())? {
        config = config.tls_config(zenedge::sync::client::tls_config(&tls));
    }
    Ok(config.build().into())
}

fn cert_pair(text: &str) -> Result<(PathBuf, PathBuf), BoxError> {
    let (cert, key) = text.split_once(',').ok_or("--consumer is CERT,KEY")?;
    Ok((cert.into(), key.into()))
}

/// One virtual edge: takes events at `rate`, syncs them, records each one's latency.
#[allow(clippy::disallowed_methods)] // a load tool's own pacing thread
fn run_edge(args: &HubLoadArgs, n: u32, stop: &AtomicBool, latencies: &Mutex<Histogram<u64>>) -> Result<u64, BoxError> {
    let edge = format!("edge-{n}");
    let agent =
        agent(&args.hub, &args.ca, args.certs.join(format!("{edge}.pem")), args.certs.join(format!("{edge}.key")))?;
    let url = format!("{}/v1/edges/{edge}/events", args.hub.trim_end_matches('/'));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    let (mut taken, mut sent, mut prev): (u64, u64, Option<uuid::Uuid>) = (0, 0, None);
    let mut ids = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Events taken so far at the offered rate; wait for the first, then linger.
        let due = (start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64;
        if due <= sent {
            std::thread::sleep(interval.min(Duration::from_millis(1)));
            continue;
        }
        let first_at = start + interval.mul_f64(sent as f64);
        let linger_end = first_at + args.linger;
        let now = Instant::now();
        if now < linger_end && due - sent < 5000 {
            std::thread::sleep(linger_end - now);
        }
        let due = ((start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64).min(sent + 5000);
        let (first, last) = (sent + 1, due);
        let mut bodies = Vec::with_capacity((last - first + 1) as usize);
        ids.clear();
        for seq in first..=last {
            let id = uuid::Uuid::now_v7();
            ids.push(id);
            let env = Envelope {
                seq,
                event_id: id,
                event_type: "HL7MessageReceived",
                event_version: 1,
                occurred_at: jiff::Timestamp::now(),
                recorded_at: jiff::Timestamp::now(),
                tenant_id: "bench",
                hospital_id: "bench",
                edge_id: &edge,
                aggregate: Aggregate { kind: "hl7_message", id: format!("{edge}-{seq}") },
                data: Data {
                    raw: vec![b'x'; args.size.saturating_sub(400)],
                    patient_id: format!("P{}", seq % 50_000),
                    accession_number: format!("A{n}-{seq}"),
                },
            };
            bodies.push(rmp_serde::to_vec_named(&env)?);
        }
        let body = zenedge::sync::wire::encode_batch(bodies.iter().map(Vec::as_slice), 1);
        let mut request = agent
            .post(&url)
            .header("content-type", "application/msgpack")
            .header("content-encoding", "gzip")
            .header(zenedge::sync::wire::FIRST_SEQ, first.to_string())
            .header(zenedge::sync::wire::LAST_SEQ, last.to_string());
        if let Some(prev) = prev {
            request = request.header(zenedge::sync::wire::PREV_EVENT_ID, prev.to_string());
        }
        let response = request.send(body.as_slice())?;
        let done = Instant::now();
        if response.status() != 200 {
            return Err(format!("{edge}: hub answered {} for {first}..={last}", response.status()).into());
        }
        let mut h = latencies.lock().map_err(|_| "poisoned")?;
        for seq in first..=last {
            let taken_at = start + interval.mul_f64((seq - 1) as f64);
            let micros = done.saturating_duration_since(taken_at).as_micros() as u64;
            h.record(micros.clamp(1, MAX_LATENCY_US))?;
        }
        drop(h);
        prev = ids.last().copied();
        taken = last;
        sent = last;
    }
    Ok(taken)
}

/// The consumer: long-polls the feed, notes each event's age when read.
fn run_consumer(
    hub: &str,
    agent: &ureq::Agent,
    stop: &AtomicBool,
    ages: &Mutex<Histogram<u64>>,
) -> Result<u64, BoxError> {
    let (mut cursor, mut read) = (String::new(), 0u64);
    let base = hub.trim_end_matches('/');
    // Start from the end of what is there.
    loop {
        let page = feed_page(agent, base, &cursor, 0)?;
        if page["items"].as_array().is_none_or(|a| a.is_empty()) {
            break;
        }
        cursor = page["next"].as_str().unwrap_or_default().to_owned();
    }
    while !stop.load(Ordering::Relaxed) {
        let page = feed_page(agent, base, &cursor, 1)?;
        let now = jiff::Timestamp::now();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let mut h = ages.lock().map_err(|_| "poisoned")?;
        for item in &items {
            if let Some(recorded) =
                item["event"]["recorded_at"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok())
            {
                let micros = now.duration_since(recorded).as_micros().max(1) as u64;
                h.record(micros.min(MAX_LATENCY_US))?;
            }
        }
        read += items.len() as u64;
        cursor = page["next"].as_str().unwrap_or_default().to_owned();
    }
    Ok(read)
}

fn feed_page(agent: &ureq::Agent, base: &str, cursor: &str, wait: u32) -> Result<serde_json::Value, BoxError> {
    let url = format!("{base}/v1/events?after_cursor={cursor}&limit=1000&wait={wait}");
    let mut response = agent.get(&url).call()?;
    if response.status() != 200 {
        return Err(format!("feed answered {}", response.status()).into());
    }
    Ok(serde_json::from_str(&response.body_mut().with_config().limit(256 << 20).read_to_string()?)?)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

// The run lasts `--duration`: a load tool's own main thread waits it out.
#[allow(clippy::disallowed_methods)]
pub fn run_hub_load_command(args: &HubLoadArgs) -> Result<std::process::ExitCode, BoxError> {
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?));
    let ages = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?));
    let consumer = match &args.consumer {
        Some(pair) => {
            let (cert, key) = cert_pair(pair)?;
            let agent = agent(&args.hub, &args.ca, cert, key)?;
            let (stop, ages, hub) = (stop.clone(), ages.clone(), args.hub.clone());
            Some(std::thread::spawn(move || run_consumer(&hub, &agent, &stop, &ages)))
        }
        None => None,
    };
    let started = Instant::now();
    let edges: Vec<_> = (1..=args.edges)
        .map(|n| {
            let (stop, latencies) = (stop.clone(), latencies.clone());
            let args = HubLoadArgs { consumer: None, ..args.clone() };
            std::thread::spawn(move || run_edge(&args, n, &stop, &latencies))
        })
        .collect();
    std::thread::sleep(args.duration);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for edge in edges {
        total += edge.join().map_err(|_| "an edge thread panicked")??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let h = latencies.lock().map_err(|_| "poisoned")?;
    println!(
        "{} edges x {:.0} events/s for {:.1} s: {total} events stored ({:.0} events/s)",
        args.edges,
        args.rate,
        seconds,
        total as f64 / seconds
    );
    println!(
        "taken -> stored at the hub: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        ms(&h, 0.5),
        ms(&h, 0.99),
        ms(&h, 0.999),
        h.max() as f64 / 1000.0
    );
    if let Some(consumer) = consumer {
        let read = consumer.join().map_err(|_| "the consumer thread panicked")??;
        let a = ages.lock().map_err(|_| "poisoned")?;
        println!(
            "consumer (long poll): {read} events read; recorded -> read p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(&a, 0.5),
            ms(&a, 0.99),
            a.max() as f64 / 1000.0
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn run_feed_read_command(args: &FeedReadArgs) -> Result<std::process::ExitCode, BoxError> {
    let (cert, key) = cert_pair(&args.consumer)?;
    let agent = agent(&args.hub, &args.ca, cert, key)?;
    let base = args.hub.trim_end_matches('/');
    let started = Instant::now();
    let (mut cursor, mut read) = (String::new(), 0u64);
    loop {
        let page = feed_page(&agent, base, &cursor, 0)?;
        let n = page["items"].as_array().map_or(0, Vec::len);
        if n == 0 {
            break;
        }
        read += n as u64;
        cursor = page["next"].as_str().unwrap_or_default().to_owned();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("feed read from the start: {read} events in {seconds:.2} s ({:.0} events/s)", read as f64 / seconds);
    Ok(std::process::ExitCode::SUCCESS)
}
