//! `sync-lag`: the time from an HL7 ACK to the hub holding that message.
//!
//! Orders go to the edge over MLLP at a fixed offered rate (open loop, one message in
//! flight per connection); the moment each `AA` arrives is noted by control id. A second
//! thread tails the hub's copy of the edge's stream (`GET /v1/edges/{edge}/events?after=`,
//! as fast as answers come, 2 ms apart when there is nothing new) and notes when each
//! `HL7MessageReceived` first shows there. Latency = seen at the hub − ACK received, so it
//! includes the edge's linger, the batch's trip and commit at the hub, and up to one poll
//! interval plus one read of the hub (the poll's own cost is in the figure, not hidden).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use zenedge::mllp::codec::{Frame, MllpCodec};

use crate::message::{OrderWriter, hl7_now, parse_ack};
use crate::{BoxError, MAX_LATENCY_US};

#[derive(clap::Args, Debug)]
pub struct SyncLagArgs {
    /// The edge's MLLP address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    mllp: SocketAddr,
    /// The hub's base URL (http:// or https://).
    #[arg(long)]
    hub: String,
    /// The edge id whose stream to tail.
    #[arg(long)]
    edge: String,
    /// With https: the CA bundle of the hub's certificate, and a client certificate and key
    /// the hub accepts for that edge.
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    /// Offered messages/s across all connections.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 8)]
    connections: u64,
    /// How long to measure, after the warmup.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
}

/// What both sides note, by control id.
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, Instant>,
    /// Seen at the hub before the sender noted the ACK (possible: the ACK is read after the
    /// commit that the sync worker may already have shipped).
    seen_first: HashMap<String, Instant>,
    latencies: Vec<Duration>,
    measured: u64,
    refused: u64,
}

// The hub is polled by design (it has no push), and the end waits for stragglers: a load
// tool's own threads, not daemon code.
#[allow(clippy::disallowed_methods)]
pub fn run_sync_lag_command(args: &SyncLagArgs) -> Result<std::process::ExitCode, BoxError> {
    let agent = agent(args)?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let run =
        format!("SL{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 0xfffff);
    let start_after = hub_head(&agent, args)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tail = {
        let (ledger, stop, url) = (ledger.clone(), stop.clone(), args.hub.trim_end_matches('/').to_owned());
        let (edge, run) = (args.edge.clone(), run.clone());
        std::thread::spawn(move || tail_hub(&agent, &url, &edge, &run, start_after, &ledger, &stop))
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let measure_from = Instant::now() + args.warmup;
    let end = measure_from + args.duration;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            let interval = Duration::from_secs_f64(args.connections as f64 / args.rate);
            let first = tokio::time::Instant::now() + interval.mul_f64(c as f64 / args.connections as f64);
            let (ledger, run, size, addr) = (ledger.clone(), run.clone(), args.size, args.mllp);
            tasks.push(tokio::spawn(async move {
                send(addr, c, first, interval, end, measure_from, &run, size, &ledger).await
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<(), BoxError>(())
    })?;
    // Give the sync its time to deliver the last ones.
    let grace = Instant::now() + Duration::from_secs(10);
    while Instant::now() < grace {
        let l = ledger.lock().map_err(|_| "ledger poisoned")?;
        if l.latencies.len() as u64 >= l.measured {
            break;
        }
        drop(l);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let tail_error = tail.join().map_err(|_| "hub tail panicked")?;
    let l = ledger.lock().map_err(|_| "ledger poisoned")?;
    let mut h = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    for d in &l.latencies {
        h.saturating_record(d.as_micros() as u64);
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "offered {:.0} msg/s for {:?}: {} acknowledged, {} seen at the hub, {} refused",
        args.rate,
        args.duration,
        l.measured,
        l.latencies.len(),
        l.refused
    );
    println!(
        "ACK to stored at hub: p50 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    if let Err(e) = tail_error {
        eprintln!("zenedge-load: reading the hub failed: {e}");
        return Ok(std::process::ExitCode::FAILURE);
    }
    let complete = l.latencies.len() as u64 >= l.measured && l.refused == 0;
    Ok(if complete { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

#[allow(clippy::too_many_arguments)]
async fn send(
    addr: SocketAddr,
    connection: u64,
    first: tokio::time::Instant,
    interval: Duration,
    end: Instant,
    measure_from: Instant,
    run: &str,
    size: usize,
    ledger: &Mutex<Ledger>,
) -> Result<(), BoxError> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut codec = MllpCodec::new(1 << 20);
    let mut buf = BytesMut::with_capacity(4096);
    let mut order = OrderWriter::default();
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0.. {
        ticker.tick().await;
        if Instant::now() >= end {
            return Ok(());
        }
        let control_id = format!("{run}-{connection}-{n}");
        order.write(connection << 32 | n, &control_id, &hl7_now(), size);
        stream.write_all(&order.frame).await?;
        let payload = loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Message(payload))) => break payload,
                Ok(Some(_)) | Err(_) => return Err("bad ACK frame".into()),
                Ok(None) => {}
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err("the edge closed the connection".into());
            }
        };
        let acked_at = Instant::now();
        let positive = parse_ack(&payload).is_some_and(|a| a.is_positive_for(&control_id));
        let mut l = ledger.lock().map_err(|_| "ledger poisoned")?;
        if !positive {
            l.refused += 1;
            continue;
        }
        if acked_at < measure_from {
            continue;
        }
        l.measured += 1;
        match l.seen_first.remove(&control_id) {
            Some(_) => l.latencies.push(Duration::ZERO),
            None => {
                l.acked.insert(control_id, acked_at);
            }
        }
    }
    Ok(())
}

/// A client for the hub: the daemon's own TLS loading (checked files) and ureq settings.
fn agent(args: &SyncLagArgs) -> Result<ureq::Agent, BoxError> {
    let endpoint = zenedge::config::HubEndpoint {
        url: args.hub.trim_end_matches('/').to_owned(),
        ca_file: args.ca.clone(),
        client_cert: args.cert.clone(),
        client_key: args.key.clone(),
    };
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .proxy(None);
    if let Some(tls) = zenedge::sync::tls::load(&endpoint, jiff::Timestamp::now())? {
        config = config.tls_config(zenedge::sync::client::tls_config(&tls));
    }
    Ok(config.build().into())
}

fn hub_head(agent: &ureq::Agent, args: &SyncLagArgs) -> Result<u64, BoxError> {
    let url = format!("{}/v1/edges/{}", args.hub.trim_end_matches('/'), args.edge);
    let mut response = agent.get(&url).call()?;
    if response.status() == 404 {
        return Ok(0);
    }
    let body: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string()?)?;
    Ok(body["stored_through"].as_u64().unwrap_or(0))
}

#[allow(clippy::disallowed_methods)] // polling the hub, see `run_sync_lag_command`
fn tail_hub(
    agent: &ureq::Agent,
    url: &str,
    edge: &str,
    run: &str,
    mut after: u64,
    ledger: &Mutex<Ledger>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), BoxError> {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut response = agent.get(&format!("{url}/v1/edges/{edge}/events?after={after}&limit=1000")).call()?;
        let seen_at = Instant::now();
        if response.status() != 200 {
            return Err(format!("hub answered {}", response.status()).into());
        }
        let page: serde_json::Value =
            serde_json::from_str(&response.body_mut().with_config().limit(64 << 20).read_to_string()?)?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let mut l = ledger.lock().map_err(|_| "ledger poisoned")?;
        for item in &items {
            after = after.max(item["seq"].as_u64().unwrap_or(after));
            let event = &item["event"];
            if event["event_type"] != "HL7MessageReceived" {
                continue;
            }
            let Some(id) = event["data"]["control_id"].as_str().filter(|id| id.starts_with(run)) else { continue };
            match l.acked.remove(id) {
                Some(acked_at) => l.latencies.push(seen_at.saturating_duration_since(acked_at)),
                None => {
                    l.seen_first.insert(id.to_owned(), seen_at);
                }
            }
        }
    }
    Ok(())
}
