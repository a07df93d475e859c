//! `zenedge events [--after SEQ] [--follow]`: the running daemon's events as JSON lines, one
//! event per line in sequence order, as `GET /api/v1/events` gives them (for tail and
//! export).
//!
//! Without `--follow` it pages through `/api/v1/events?after=&limit=1000` from `--after`
//! (default 0) and exits 0 at the end of the log. With `--follow` it reads the live stream
//! `/api/v1/events/stream` (from `--after`, or from now when it is not given) and prints
//! each event's `data`; when the daemon ends the stream (shutdown) it says where to resume
//! and exits 1. A daemon that cannot be reached is a message and exit 1. A closed stdout
//! (`| head`) ends it quietly with exit 0.

use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

/// Events per page.
const PAGE: usize = 1000;
/// Largest page body accepted (a page of large HL7 messages).
const MAX_PAGE_BYTES: u64 = 1 << 30;

/// Why printing events stopped.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The daemon cannot be reached, refused, or broke off.
    #[error("{0}")]
    Daemon(String),
    /// Writing to the output failed (a closed pipe ends quietly).
    #[error("cannot write the events: {0}")]
    Output(#[from] io::Error),
}

/// `zenedge events`.
pub fn run_command(config: &Path, after: Option<u64>, follow: bool) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = super::Daemon::of(&config);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let result = if follow { self::follow(addr, after, &mut out) } else { export(addr, after.unwrap_or(0), &mut out) };
    let result = result.and_then(|last| out.flush().map(|()| last).map_err(EventsError::Output));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(EventsError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zenedge events: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A page of `/api/v1/events`, its events left as the daemon wrote them.
#[derive(serde::Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    items: Vec<&'a serde_json::value::RawValue>,
    next: Option<u64>,
}

/// The one field of an event `export` reads.
#[derive(serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// Writes every event after `after` as one JSON line; returns the last seq written (or
/// `after`).
pub fn export(addr: impl Into<super::Daemon>, mut after: u64, out: &mut impl Write) -> Result<u64, EventsError> {
    let daemon: super::Daemon = addr.into();
    let agent = daemon.agent(None);
    loop {
        let url = daemon.url(&format!("/api/v1/events?after={after}&limit={PAGE}"));
        let mut response =
            daemon.authorized(agent.get(&url)).call().map_err(|e| EventsError::Daemon(daemon.unreachable(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_PAGE_BYTES)
            .read_to_string()
            .map_err(|e| EventsError::Daemon(format!("unreadable answer from {url}: {e}")))?;
        if status != 200 {
            return Err(EventsError::Daemon(super::error_text(&daemon, status, &body)));
        }
        let page: RawPage<'_> = serde_json::from_str(&body)
            .map_err(|e| EventsError::Daemon(format!("{url} did not answer a page: {e}")))?;
        for item in page.items {
            // Each event as the daemon wrote it: the same keys in the same order as the API.
            out.write_all(item.get().as_bytes())?;
            out.write_all(b"\n")?;
            let seq: Option<Seq> = serde_json::from_str(item.get()).ok();
            after = seq.map_or(after, |s| s.seq);
        }
        match page.next {
            Some(next) => after = next,
            None => return Ok(after),
        }
    }
}

/// Writes each event of the live stream as it comes; returns only when the stream fails or
/// ends (an error saying where to resume).
pub fn follow(addr: impl Into<super::Daemon>, after: Option<u64>, out: &mut impl Write) -> Result<u64, EventsError> {
    let from = after.map(|a| format!("?after={a}")).unwrap_or_default();
    let daemon: super::Daemon = addr.into();
    let url = daemon.url(&format!("/api/v1/events/stream{from}"));
    let response = daemon
        .authorized(daemon.agent(None).get(&url))
        .header("Accept", "text/event-stream")
        .call()
        .map_err(|e| EventsError::Daemon(daemon.unreachable(&e)))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let text = body.with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        return Err(EventsError::Daemon(super::error_text(&daemon, status, &text)));
    }
    let mut last = after;
    for line in BufReader::new(body.into_reader()).lines() {
        let line = line.map_err(|e| EventsError::Daemon(format!("the event stream broke off: {e}")))?;
        if let Some(id) = line.strip_prefix("id:") {
            last = id.trim().parse().ok().or(last);
        } else if let Some(data) = line.strip_prefix("data:") {
            out.write_all(data.strip_prefix(' ').unwrap_or(data).as_bytes())?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    let resume = last.map(|seq| format!("; resume with --after {seq}")).unwrap_or_default();
    Err(EventsError::Daemon(format!("the daemon ended the event stream (shutting down?){resume}")))
}
