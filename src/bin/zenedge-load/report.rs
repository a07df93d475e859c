//! The `mllp` command's outcome: the report (text or JSON), `--acked-out` and exit status.

use std::fs;
use std::io::{self, BufWriter, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::conn::ConnStats;
use crate::driver::run_mllp;
use crate::message::CODES;
use crate::plan::Plan;
use crate::{BoxError, MllpArgs};

#[derive(Debug, Serialize)]
pub(crate) struct LatencyMs {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

#[derive(Debug, Serialize)]
struct Errors {
    timeouts: u64,
    disconnects: u64,
    bad_frames: u64,
    reconnects: u64,
    reconnect_failures: u64,
}

#[derive(Debug, Serialize)]
struct MllpReport {
    addr: String,
    connections: u64,
    threads: u64,
    nagle: bool,
    /// Offered rate (msgs/s, all connections); 0 = closed loop.
    rate: f64,
    run_id: String,
    warmup_sent: u64,
    /// Warmup messages without a positive ACK (not in the other figures).
    warmup_failed: u64,
    sent: u64,
    /// ACKs received for measured messages, any code.
    acked: u64,
    acked_by_code: std::collections::BTreeMap<&'static str, u64>,
    msa2_mismatch: u64,
    not_ack_type: u64,
    errors: Errors,
    late_sends: u64,
    elapsed_s: f64,
    msgs_per_s: f64,
    latency_ms: LatencyMs,
    /// MLLP over TLS.
    tls: bool,
    /// Connect (and handshake) time of the connections opened.
    connect_ms: LatencyMs,
}

/// Percentiles of a microsecond histogram, in milliseconds.
pub(crate) fn latency_ms(h: &hdrhistogram::Histogram<u64>) -> LatencyMs {
    let ms = |us: u64| us as f64 / 1000.0;
    LatencyMs {
        p50: ms(h.value_at_quantile(0.50)),
        p95: ms(h.value_at_quantile(0.95)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: round3(h.mean() / 1000.0),
    }
}

fn mllp_report(args: &MllpArgs, plan_run_id: &str, s: &ConnStats) -> MllpReport {
    let elapsed = match (s.first_send, s.last_ack) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let acked: u64 = s.codes.iter().sum();
    let mut by_code: std::collections::BTreeMap<&str, u64> = CODES.iter().copied().zip(s.codes).collect();
    by_code.insert("other", s.codes[CODES.len()]);
    MllpReport {
        addr: args.addr.to_string(),
        connections: args.connections,
        threads: args.threads,
        nagle: args.nagle,
        rate: args.rate,
        run_id: plan_run_id.to_owned(),
        warmup_sent: s.warmup_sent,
        warmup_failed: s.warmup_failed,
        sent: s.sent,
        acked,
        acked_by_code: by_code,
        msa2_mismatch: s.msa2_mismatch,
        not_ack_type: s.not_ack_type,
        errors: Errors {
            timeouts: s.timeouts,
            disconnects: s.disconnects,
            bad_frames: s.bad_frames,
            reconnects: s.reconnects,
            reconnect_failures: s.reconnect_failures,
        },
        late_sends: s.late_sends,
        elapsed_s: round3(elapsed),
        msgs_per_s: if elapsed > 0.0 { (acked as f64 / elapsed).round() } else { 0.0 },
        latency_ms: latency_ms(&s.latency_us),
        tls: args.tls.tls_ca.is_some(),
        connect_ms: latency_ms(&s.open_us),
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_mllp_text(r: &MllpReport) {
    let rate = if r.rate > 0.0 { format!("{} msgs/s offered", r.rate) } else { "closed loop".into() };
    println!(
        "zenedge-load mllp {}: {} connection(s), {} thread(s), nagle {}, {rate}, run id {}",
        r.addr,
        r.connections,
        r.threads,
        if r.nagle { "on (3 writes/frame)" } else { "off" },
        r.run_id
    );
    println!(
        "sent {} (+{} warmup, {} of them not AA/CA), acked {} in {:.3} s: {} msgs/s",
        r.sent, r.warmup_sent, r.warmup_failed, r.acked, r.elapsed_s, r.msgs_per_s
    );
    let codes: Vec<String> = r.acked_by_code.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!(
        "acked by code: {}   MSA-2 mismatch {}   non-ACK type {}",
        codes.join("  "),
        r.msa2_mismatch,
        r.not_ack_type
    );
    let e = &r.errors;
    println!(
        "errors: timeouts {}  disconnects {}  bad frames {}  reconnects {} (failed {})  late sends {}",
        e.timeouts, e.disconnects, e.bad_frames, e.reconnects, e.reconnect_failures, r.late_sends
    );
    let l = &r.latency_ms;
    println!(
        "ACK latency ms: p50 {}  p95 {}  p99 {}  p99.9 {}  max {}  mean {}",
        l.p50, l.p95, l.p99, l.p999, l.max, l.mean
    );
    let c = &r.connect_ms;
    println!("connect{} ms: p50 {}  p99 {}  max {}", if r.tls { " + TLS handshake" } else { "" }, c.p50, c.p99, c.max);
}

fn write_acked(path: &PathBuf, plan_run_id: &str, acked: &[u64]) -> io::Result<()> {
    let mut out = BufWriter::new(fs::File::create(path)?);
    for n in acked {
        writeln!(out, "{plan_run_id}-{n}")?;
    }
    out.flush()
}

pub(crate) fn run_mllp_command(args: MllpArgs) -> Result<ExitCode, BoxError> {
    let plan = Plan::from_args(&args)?;
    let run_id = plan.run_id.clone();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads as usize).enable_all().build()?;
    let stats = match runtime.block_on(run_mllp(plan)) {
        Ok(stats) => stats,
        Err(err) => {
            eprintln!("zenedge-load: cannot connect to {}: {err}", args.addr);
            return Ok(ExitCode::from(3));
        }
    };
    if let Some(path) = &args.acked_out {
        write_acked(path, &run_id, &stats.acked).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let report = mllp_report(&args, &run_id, &stats);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_mllp_text(&report);
    }
    let positive = report.acked_by_code["AA"] + report.acked_by_code["CA"];
    let clean = positive == report.sent
        && report.msa2_mismatch == 0
        && report.warmup_failed == 0
        && stats.timeouts + stats.disconnects + stats.bad_frames + stats.reconnect_failures == 0;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
