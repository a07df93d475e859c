//! `handshakes`: the cost of opening a connection, apart from the messages sent over it.
//! Connections are opened (TCP connect, and the full TLS handshake with `--tls-ca`) and
//! closed again as soon as they are up, `--concurrency` at a time, `--count` in all.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::report::{LatencyMs, latency_ms, round3};
use crate::tls::{Tls, TlsArgs};
use crate::{BoxError, MAX_LATENCY_US};

#[derive(Args, Debug)]
pub(crate) struct HandshakeArgs {
    /// Receiver address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    addr: SocketAddr,
    /// Connections to open in all.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    concurrency: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Debug, Serialize)]
struct HandshakeReport {
    addr: String,
    tls: bool,
    concurrency: u64,
    opened: u64,
    failed: u64,
    elapsed_s: f64,
    per_s: f64,
    latency_ms: LatencyMs,
}

pub(crate) fn run_handshake_command(args: &HandshakeArgs) -> Result<ExitCode, BoxError> {
    let tls = Tls::from_args(&args.tls)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads as usize).enable_all().build()?;
    let started = Instant::now();
    let (latency, failed) = runtime.block_on(open_all(args.addr, tls.clone(), args.count, args.concurrency));
    let elapsed = started.elapsed().as_secs_f64();
    let opened = latency.len();
    let report = HandshakeReport {
        addr: args.addr.to_string(),
        tls: tls.is_some(),
        concurrency: args.concurrency,
        opened,
        failed,
        elapsed_s: round3(elapsed),
        per_s: (opened as f64 / elapsed).round(),
        latency_ms: latency_ms(&latency),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let l = &report.latency_ms;
        println!(
            "zenedge-load handshakes {}: {} opened{} ({} failed) in {:.3} s: {}/s; ms p50 {} p99 {} max {}",
            report.addr,
            opened,
            if report.tls { " with TLS" } else { "" },
            failed,
            elapsed,
            report.per_s,
            l.p50,
            l.p99,
            l.max
        );
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Opens `count` connections, `concurrency` at a time: their latencies and the failures.
async fn open_all(addr: SocketAddr, tls: Option<Tls>, count: u64, concurrency: u64) -> (Histogram<u64>, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, tls) = (next.clone(), tls.clone());
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("bounds");
                let mut failed = 0;
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let started = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(10), open_and_close(addr, tls.as_ref())).await {
                        Ok(Ok(())) => latency.saturating_record((started.elapsed().as_micros() as u64).max(1)),
                        _ => failed += 1,
                    }
                }
                (latency, failed)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).expect("bounds");
    let mut failed = 0;
    for task in tasks {
        let (latency, f) = task.await.expect("handshake task panicked");
        all.add(&latency).expect("same bounds");
        failed += f;
    }
    (all, failed)
}

/// One connection up (TLS: the handshake done, both ways), then closed.
async fn open_and_close(addr: SocketAddr, tls: Option<&Tls>) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    if let Some(tls) = tls {
        let mut stream = tls.connector.connect(tls.name.clone(), tcp).await?;
        stream.shutdown().await?;
    }
    Ok(())
}
