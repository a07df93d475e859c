//! `zenedge sync fork`: after the sync stopped at `hub_diverged`, keep both histories.
//!
//! The running daemon's sync worker does it (`POST /api/v1/sync/fork` with
//! scope `operator`): it asks the hub for a new epoch of this edge's stream after the last
//! sequence number both histories share, records the epoch, and sends this log's events after
//! that point there. The hub keeps the other history as it is. Intake goes on throughout.
//! Exit 0 once forked; 1 when the daemon does not answer or refuses (nothing diverged, the hub
//! refused or could not be reached: the sync stays stopped and the command may be repeated);
//! 78 for an unusable config or a missing operator token.

use std::path::Path;
use std::process::ExitCode;

/// `zenedge sync fork`.
pub fn run_command(config: &Path) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let daemon = super::Daemon::of(&config);
    if let Err(code) = daemon.require_token("sync fork", "forking the sync") {
        return code;
    }
    let answer = super::call(&daemon, "POST", "/api/v1/sync/fork");
    match answer {
        Ok((200, body)) => {
            let done: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            println!(
                "forked: this edge now syncs to epoch {} of its stream on the hub, which continues epoch {} after seq {}; \
                 {} events of this log go there. The hub keeps epoch {} as it is.",
                done["epoch"], done["parent"], done["fork_at"], done["to_deliver"], done["parent"]
            );
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("zenedge sync fork: {}", super::error_text(&daemon, status, &body));
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("zenedge sync fork: {message}");
            ExitCode::FAILURE
        }
    }
}
