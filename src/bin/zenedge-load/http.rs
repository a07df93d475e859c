//! `http`: GET requests against the read API at a fixed offered rate (open loop). When a
//! slow answer made a request late, its latency counts from the moment it was *scheduled*,
//! so the wait is not hidden (no coordinated omission); otherwise from the moment it was
//! sent, so the timer's millisecond granularity is not counted as the server's latency.
//!
//! Paths are templates filled per request from a random exam number `n` of a log written
//! by `fill-log` (`{study}`, `{accession}`, `{patient}`, `{exam}`); requests cycle through the
//! templates. Each connection is an HTTP/1.1 keep-alive connection (hyper's client).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::fill::{accession, has_study, patient, study_uid};
use crate::{BoxError, HttpArgs, MAX_LATENCY_US};

/// Fills a template for exam `n`; a `{study}` template takes the exam before `n` when `n`
/// has no study, so every such request names a study that exists.
fn fill(template: &str, n: u64) -> String {
    let n = if template.contains("{study}") && !has_study(n) { n - 1 } else { n };
    template
        .replace("{study}", &study_uid(n))
        .replace("{accession}", &accession(n))
        .replace("{patient}", &patient(n))
        .replace("{exam}", &n.to_string())
}

struct ConnectionReport {
    latencies: hdrhistogram::Histogram<u64>,
    statuses: std::collections::BTreeMap<u16, u64>,
    errors: u64,
}

/// One connection's share of the schedule.
struct Schedule {
    templates: Vec<String>,
    interval: Duration,
    start: tokio::time::Instant,
    measure_from: tokio::time::Instant,
    end: tokio::time::Instant,
    exams: u64,
    seed: u64,
    /// `Bearer <token>`, if the run has a token.
    authorization: Option<String>,
}

async fn connection(addr: SocketAddr, s: Schedule) -> Result<ConnectionReport, BoxError> {
    let Schedule { templates, interval, start, measure_from, end, exams, seed, authorization } = s;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut report = ConnectionReport {
        latencies: hdrhistogram::Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
        statuses: Default::default(),
        errors: 0,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut scheduled = start;
    let mut i = 0usize;
    let mut previous_done = start;
    while scheduled < end {
        tokio::time::sleep_until(scheduled).await;
        let origin = if previous_done > scheduled { scheduled } else { tokio::time::Instant::now() };
        let path = fill(&templates[i % templates.len()], rng.u64(..exams.max(1)));
        i += 1;
        let mut request = hyper::Request::get(path).header("host", "zenedge");
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(Empty::<Bytes>::new())?;
        let outcome = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<u16, BoxError>(status)
        }
        .await;
        let done = tokio::time::Instant::now();
        previous_done = done;
        if scheduled >= measure_from {
            match outcome {
                Ok(status) => {
                    *report.statuses.entry(status).or_default() += 1;
                    let us = u64::try_from(done.duration_since(origin).as_micros()).unwrap_or(u64::MAX);
                    report.latencies.saturating_record(us.clamp(1, MAX_LATENCY_US));
                }
                Err(_) => report.errors += 1,
            }
        }
        scheduled += interval;
    }
    Ok(report)
}

pub fn run_http_command(args: &HttpArgs) -> Result<std::process::ExitCode, BoxError> {
    if args.path.is_empty() {
        return Err("give at least one --path".into());
    }
    let authorization = match &args.token_file {
        Some(file) => Some(format!("Bearer {}", std::fs::read_to_string(file)?.trim())),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::try_from(args.threads)?)
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let measure_from = start + args.warmup;
        let end = measure_from + args.duration;
        let per_connection = args.rate / args.connections as f64;
        let interval = Duration::from_secs_f64(1.0 / per_connection);
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            // Spread the connections' schedules evenly over one interval.
            let offset = interval.mul_f64(c as f64 / args.connections as f64);
            let schedule = Schedule {
                templates: args.path.clone(),
                interval,
                start: start + offset,
                measure_from,
                end,
                exams: args.exams,
                seed: c,
                authorization: authorization.clone(),
            };
            tasks.push(tokio::spawn(connection(args.addr, schedule)));
        }
        let mut total = ConnectionReport {
            latencies: hdrhistogram::Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            statuses: Default::default(),
            errors: 0,
        };
        for t in tasks {
            let r = t.await??;
            total.latencies.add(&r.latencies)?;
            for (status, n) in r.statuses {
                *total.statuses.entry(status).or_default() += n;
            }
            total.errors += r.errors;
        }
        Ok::<_, BoxError>(total)
    })?;
    let h = &report.latencies;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let achieved = h.len() as f64 / args.duration.as_secs_f64();
    println!(
        "offered {:.0} req/s, answered {achieved:.0} req/s over {:?}; statuses {:?}; errors {}",
        args.rate, args.duration, report.statuses, report.errors
    );
    println!(
        "latency: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    let ok = report.errors == 0 && report.statuses.keys().all(|s| (200..300).contains(s));
    Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// `match-lookup`: the writer's matching lookup for random accessions of a filled log.
pub fn run_lookup_command(args: &crate::LookupArgs) -> Result<std::process::ExitCode, BoxError> {
    let config = zenedge::config::Config::load(&args.config)?;
    let db = zenedge::projections::rebuild::open(&config.database_path(), &config.site, config.store.cache_size)?;
    let mut rng = fastrand::Rng::with_seed(7);
    let accessions: Vec<String> = (0..args.lookups).map(|_| accession(rng.u64(..args.exams.max(1)))).collect();
    // One pass to warm the cache (the writer's working set is hot in production), one measured.
    zenedge::projections::probe::time_match_lookups(&db, &config.site, &accessions)?;
    let started = Instant::now();
    let (timings, _) = zenedge::projections::probe::time_match_lookups(&db, &config.site, &accessions)?;
    let elapsed = started.elapsed();
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for t in &timings {
        h.saturating_record(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1));
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{} lookups in {:.2} s: p50 {:.1} µs  p99 {:.1} µs  p99.9 {:.1} µs  max {:.1} µs",
        timings.len(),
        elapsed.as_secs_f64(),
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1000.0
    );
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
