//! `commit-ceiling`: durable redb commits per second in a fresh database, the physical
//! ceiling the daemon's acknowledged throughput is judged against.

use std::fs;
use std::process::ExitCode;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::message::mix;
use crate::report::round3;
use crate::{BoxError, CeilingArgs, MAX_LATENCY_US};

const EVENTS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("events");
/// Shaped like the daemon's `hl7_dedupe`: (tenant, hospital, MSH-3, MSH-4, MSH-10, sha256).
type IndexKey = (&'static str, &'static str, &'static str, &'static str, &'static str, [u8; 32]);
const INDEX: redb::TableDefinition<IndexKey, &[u8]> = redb::TableDefinition::new("index");
/// Size of an index row's value (the daemon keeps the ACK it sent there).
const INDEX_VALUE_BYTES: usize = 200;

#[derive(Debug, Serialize)]
struct CommitMs {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Serialize)]
struct CeilingReport {
    dir: String,
    commits: u64,
    events_per_commit: u64,
    event_bytes: usize,
    index_row: bool,
    elapsed_s: f64,
    commits_per_s: f64,
    events_per_s: f64,
    /// One whole write transaction: begin, inserts, durable commit.
    commit_ms: CommitMs,
}

/// Fills `buf` with xorshift bytes: incompressible, like real message payloads.
fn fill_random(buf: &mut [u8], mut state: u64) {
    for chunk in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
}

fn commit_ceiling(args: &CeilingArgs) -> Result<CeilingReport, BoxError> {
    fs::create_dir_all(&args.dir).map_err(|e| format!("creating {}: {e}", args.dir.display()))?;
    let path = args.dir.join(format!("zenedge-load-ceiling-{}.redb", std::process::id()));
    let db = redb::Database::create(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    let mut value = vec![0u8; args.event_bytes];
    fill_random(&mut value, 0x2545_F491_4F6C_DD1D);
    let mut hist = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    let mut key = 0u64;
    let started = Instant::now();
    for _ in 0..args.commits {
        let t0 = Instant::now();
        let tx = db.begin_write()?; // Durability::Immediate is the default.
        {
            let mut table = tx.open_table(EVENTS)?;
            let mut index = if args.index_row { Some(tx.open_table(INDEX)?) } else { None };
            for _ in 0..args.events_per_commit {
                let head = value.len().min(8);
                value[..head].copy_from_slice(&mix(key).to_le_bytes()[..head]);
                table.insert(key, value.as_slice())?;
                if let Some(index) = index.as_mut() {
                    let (control_id, mut sha) = (format!("RUN-{key:010}"), [0u8; 32]);
                    sha[..8].copy_from_slice(&mix(key).to_le_bytes());
                    index.insert(
                        ("t", "h", "RIS", "HOSP", control_id.as_str(), sha),
                        &value[..INDEX_VALUE_BYTES.min(value.len())],
                    )?;
                }
                key += 1;
            }
        }
        tx.commit()?;
        hist.saturating_record((t0.elapsed().as_micros() as u64).max(1));
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(db);
    fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(CeilingReport {
        dir: args.dir.display().to_string(),
        commits: args.commits,
        events_per_commit: args.events_per_commit,
        event_bytes: args.event_bytes,
        index_row: args.index_row,
        elapsed_s: round3(elapsed),
        commits_per_s: (args.commits as f64 / elapsed).round(),
        events_per_s: (key as f64 / elapsed).round(),
        commit_ms: CommitMs {
            mean: round3(hist.mean() / 1000.0),
            p50: ms(hist.value_at_quantile(0.5)),
            p99: ms(hist.value_at_quantile(0.99)),
            max: ms(hist.max()),
        },
    })
}

pub(crate) fn run_ceiling_command(args: &CeilingArgs) -> Result<ExitCode, BoxError> {
    let r = commit_ceiling(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "redb 4.6 durable commits in {}: {} commits x {} event(s) x {} B in {:.3} s",
            r.dir, r.commits, r.events_per_commit, r.event_bytes, r.elapsed_s
        );
        println!("{} commits/s, {} events/s", r.commits_per_s, r.events_per_s);
        let c = &r.commit_ms;
        println!("commit ms: mean {}  p50 {}  p99 {}  max {}", c.mean, c.p50, c.p99, c.max);
    }
    Ok(ExitCode::SUCCESS)
}
