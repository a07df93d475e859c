//! `zenedge status`: the running daemon's state, fetched from its HTTP API
//! (`GET /api/v1/status` at the config's `http.listen`; an unspecified address such as
//! `0.0.0.0` is reached on loopback). Prints a summary, or the JSON with `--json`. Exit 0
//! when the daemon answered, 1 when it could not be reached, 78 for an unusable config.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// How long to wait for the daemon.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Prints the daemon's status; exit 1 when it cannot be reached.
pub fn run_command(config: &std::path::Path, json: bool) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = super::Daemon::of(&config);
    match fetch(addr) {
        Ok(status) if json => {
            println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(status) => {
            print!("{}", summary(&status, jiff::Timestamp::now()));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("zenedge status: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /api/v1/status` from the daemon at `addr`.
pub fn fetch(addr: impl Into<super::Daemon>) -> Result<Value, String> {
    let daemon: super::Daemon = addr.into();
    let url = daemon.url("/api/v1/status");
    let mut response =
        daemon.authorized(daemon.agent(Some(TIMEOUT)).get(&url)).call().map_err(|e| daemon.unreachable(&e))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("unreadable answer from {url}: {e}"))?;
    if status != 200 {
        return Err(format!("{url}: {}", super::error_text(&daemon, status, &body)));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url} did not answer JSON: {e}"))
}

/// `n thing` or `n things` (`-` when the daemon did not say).
fn count(n: &Value, thing: &str) -> String {
    match n.as_u64() {
        Some(1) => format!("1 {thing}"),
        Some(n) if thing.ends_with(['s', 'h', 'y']) => {
            let plural = thing.strip_suffix('y').map_or_else(|| format!("{thing}es"), |stem| format!("{stem}ies"));
            format!("{n} {plural}")
        }
        Some(n) => format!("{n} {thing}s"),
        None => format!("- {thing}s"),
    }
}

/// How long before `now` the time `at` (RFC 3339) was, in words: `4 s`, `12 min`, `3 h`,
/// `2 d`; `None` when `at` is not a time.
fn ago(at: &str, now: jiff::Timestamp) -> Option<String> {
    let at: jiff::Timestamp = at.parse().ok()?;
    let seconds = now.as_second().saturating_sub(at.as_second()).max(0);
    Some(match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    })
}

/// The last error's line: when it happened, how long ago, and whether it has cleared.
fn last_error(sync: &Value, now: jiff::Timestamp) -> Option<String> {
    let error = sync["last_error"].as_str()?;
    let when = match sync["last_error_at"].as_str() {
        Some(at) => format!(" at {at} ({} ago", ago(at, now).unwrap_or_else(|| "?".into())),
        None => " (".into(),
    };
    let state = match sync["last_error_cleared_at"].as_str() {
        Some(cleared) => format!("cleared at {cleared}"),
        None => "still failing".into(),
    };
    Some(format!("            last error{when}; {state}): {error}\n"))
}

/// The lines about which history the hub is sent, and a stop for another history.
fn history(sync: &Value) -> String {
    let mut out = String::new();
    if let Some(d) = sync["diverged"].as_object() {
        let field = |k: &str| d.get(k).map_or("-".to_owned(), Value::to_string);
        out += &format!(
            "            STOPPED (hub_diverged): the hub holds other events than this log from seq {} on \
             (epoch {}, hub at {}); nothing is sent, intake goes on\n",
            field("first_differing_seq"),
            field("epoch"),
            field("hub_stored_through")
        );
        out += &format!(
            "            to keep both histories: zenedge sync fork (the hub keeps its own; this log's events after seq {} go to a new epoch)\n",
            field("fork_at")
        );
    }
    if let Some(epoch) = sync["epoch"].as_u64().filter(|e| *e > 0) {
        out += &format!(
            "            epoch {epoch} of this edge's stream on the hub (forked after seq {})\n",
            sync["fork_at"]
        );
    }
    if let Some(at) = sync["restored_at"].as_str() {
        out += &format!("            restored from a backup at {at}; not yet checked against the hub\n");
    }
    out
}

/// One line per forwarding destination (none without destinations).
fn forwarding(destinations: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for d in destinations.as_array().into_iter().flatten() {
        let required = if d["required"] == Value::Bool(true) { "required" } else { "optional" };
        out += &format!(
            "forward     {} ({required}): cursor {}, behind by {} events ({} instances, {} bytes, {:.1} s), \
             {} in flight, breaker {}, {} stored and {} refused since start, last confirmation {}\n",
            text(&d["name"]),
            text(&d["cursor"]),
            text(&d["lag_events"]),
            text(&d["lag_instances"]),
            text(&d["lag_bytes"]),
            d["lag_seconds"].as_f64().unwrap_or(0.0),
            text(&d["in_flight"]),
            text(&d["breaker"]),
            text(&d["stored_total"]),
            text(&d["refused_total"]),
            text(&d["last_confirmed_at"]),
        );
        if let Value::String(e) = &d["last_error"] {
            out += &format!("            last error: {e}\n");
        }
        let letters = &d["dead_letters"];
        let open = letters["parked"].as_u64().unwrap_or(0) + letters["retry"].as_u64().unwrap_or(0);
        if open > 0 || letters["skipped"].as_u64().unwrap_or(0) > 0 {
            out += &format!(
                "            dead letters {open} ({} parked, {} to retry, {} skipped): GET \
                 /api/v1/forward/dead-letters, then POST …/{{destination}}/{{seq}}/retry or /skip\n",
                text(&letters["parked"]),
                text(&letters["retry"]),
                text(&letters["skipped"]),
            );
        }
    }
    out
}

/// The status as a few readable lines, times relative to `now`.
pub fn summary(s: &Value, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bytes = |v: &Value| v.as_u64().map_or("-".to_owned(), |b| bytesize::ByteSize(b).to_string());
    out += &format!("edge        {} (last event {})\n", text(&s["edge_id"]), text(&s["last_seq"]));
    let stored = &s["stored"];
    if stored.is_object() {
        out += &format!(
            "stored      {}, {}, {} ({} completed)\n",
            count(&stored["hl7_messages"], "HL7 message"),
            count(&stored["dicom_instances"], "DICOM instance"),
            count(&stored["studies"], "study"),
            text(&stored["studies_completed"])
        );
    }
    let ingest = &s["ingest"];
    let acks = ingest["hl7_messages"]
        .as_object()
        .filter(|m| !m.is_empty())
        .map(|m| m.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "none".into());
    out += &format!(
        "since start HL7 messages answered: {acks}; DICOM instances stored: {}; studies completed: {}\n",
        text(&ingest["dicom_instances_stored"]),
        text(&ingest["studies_completed"])
    );
    let disk = &s["disk"];
    let below = if disk["below_reserve"] == Value::Bool(true) { "  BELOW RESERVE: new data is refused" } else { "" };
    out += &format!("disk        {} free, reserve {}{below}\n", bytes(&disk["free"]), bytes(&disk["reserve"]));
    out += &forwarding(&s["forward"]);
    let sync = &s["sync"];
    if sync["enabled"] != Value::Bool(true) {
        out += "sync        off (no sync.hub_url)\n";
        return out;
    }
    out += &format!("sync        to {}\n", text(&sync["hub_url"]));
    out += &format!(
        "            cursor {}, behind by {} events ({:.1} s), breaker {}, {} failures in a row\n",
        text(&sync["cursor"]),
        text(&sync["lag_events"]),
        sync["lag_seconds"].as_f64().unwrap_or(0.0),
        text(&sync["breaker"]),
        text(&sync["consecutive_failures"])
    );
    out += &format!(
        "            sent {}, {} since start; last success {}\n",
        count(&sync["batches_sent"], "batch"),
        count(&sync["events_sent"], "event"),
        text(&sync["last_success_at"])
    );
    out += &history(sync);
    out += &last_error(sync, now).unwrap_or_default();
    let waiting = sync["dead_letters"].as_u64().unwrap_or(0);
    if waiting > 0 {
        out += &format!(
            "dead letters {waiting} waiting for an operator: GET /api/v1/dead-letters, then POST …/{{seq}}/retry or /skip\n"
        );
    }
    out
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
