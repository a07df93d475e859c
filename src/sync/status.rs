//! `zenedge status`: the running daemon's state, fetched from its HTTP API.

/// Prints the daemon's status; exit 1 when it cannot be reached.
pub fn run_command(config: &std::path::Path, json: bool) -> std::process::ExitCode {
    let _ = (config, json);
    eprintln!("zenedge status: not built yet");
    std::process::ExitCode::FAILURE
}
