//! `zenedge dead-letters list|retry SEQ|retry --all|skip SEQ`: the running daemon's dead
//! letters (events the hub refused, parked by the sync) from the command line, through the
//! daemon's API (`GET /api/v1/dead-letters`, `POST /api/v1/dead-letters/{seq}/retry` and
//! `/skip`; all with scope `operator`: the local token, see [`super::local_token`]).
//!
//! `retry --all` retries every `parked` letter (after the hub was fixed); `skipped` ones were
//! given up on purpose and stay so. Exit 0 when everything asked for was done; 1 when the
//! daemon does not answer or refused something (an unknown seq, a letter in another state,
//! a wrong token), each named; 78 for an unusable config or a missing operator token.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List { json: bool },
    Retry(u64),
    RetryAll,
    Skip(u64),
}

/// `zenedge dead-letters …`.
pub fn run_command(config: &Path, action: Action) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let addr = super::Daemon::of(&config);
    let result = match action {
        Action::List { json } => list(addr.clone()).map(|letters| {
            if json {
                println!("{}", serde_json::to_string_pretty(&letters).unwrap_or_default());
            } else {
                print!("{}", table(&letters));
            }
        }),
        Action::Retry(_) | Action::RetryAll | Action::Skip(_) => {
            if let Err(code) = addr.require_token("dead-letters", "retrying or skipping a dead letter") {
                return code;
            }
            act(&addr, action)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("zenedge dead-letters: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Every dead letter, as the daemon lists them.
pub fn list(addr: impl Into<super::Daemon>) -> Result<Vec<Value>, String> {
    let daemon: super::Daemon = addr.into();
    let (status, body) = super::call(&daemon, "GET", "/api/v1/dead-letters")?;
    if status != 200 {
        return Err(super::error_text(&daemon, status, &body));
    }
    let page: Value = serde_json::from_str(&body).map_err(|e| format!("the daemon did not answer JSON: {e}"))?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// The letters as a table, one line each.
pub fn table(letters: &[Value]) -> String {
    if letters.is_empty() {
        return "no dead letters\n".into();
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut out =
        format!("{:<10} {:<9} {:>8}  {:<24} {:<22} reason\n", "seq", "status", "attempts", "event type", "parked at");
    for l in letters {
        out += &format!(
            "{:<10} {:<9} {:>8}  {:<24} {:<22} {}\n",
            text(&l["seq"]),
            text(&l["status"]),
            text(&l["attempts"]),
            text(&l["event_type"]),
            text(&l["parked_at"]),
            text(&l["reason"])
        );
    }
    out
}

/// Retries or skips, one letter or every parked one.
fn act(addr: &super::Daemon, action: Action) -> Result<(), String> {
    let seqs = match action {
        Action::Retry(seq) | Action::Skip(seq) => vec![seq],
        _ => {
            let parked: Vec<u64> = list(addr.clone())?
                .iter()
                .filter(|l| l["status"] == "parked")
                .filter_map(|l| l["seq"].as_u64())
                .collect();
            if parked.is_empty() {
                println!("no parked dead letters: nothing to retry");
                return Ok(());
            }
            parked
        }
    };
    let verb = if matches!(action, Action::Skip(_)) { "skip" } else { "retry" };
    let mut failed = 0;
    for seq in &seqs {
        match one(addr, verb, *seq) {
            Ok(status) => println!("dead letter {seq}: {status}"),
            Err(message) => {
                eprintln!("zenedge dead-letters: dead letter {seq}: {message}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        n if seqs.len() == 1 => Err(format!("{n} request refused")),
        n => Err(format!("{n} of {} requests refused", seqs.len())),
    }
}

/// One operator action; the letter's new status.
fn one(addr: &super::Daemon, verb: &str, seq: u64) -> Result<String, String> {
    let (status, body) = super::call(addr, "POST", &format!("/api/v1/dead-letters/{seq}/{verb}"))?;
    match status {
        200 => {
            let letter: Value = serde_json::from_str(&body).unwrap_or_default();
            let now = letter["status"].as_str().unwrap_or("?").to_owned();
            Ok(match now.as_str() {
                "retry" => "queued for redelivery (the sync sends it again; `list` shows when it is delivered)".into(),
                other => other.to_owned(),
            })
        }
        404 => Err(format!("no dead letter with seq {seq} (`zenedge dead-letters list` shows them)")),
        _ => Err(super::error_text(addr, status, &body)),
    }
}

#[cfg(test)]
#[path = "dead_letters_tests.rs"]
mod tests;
