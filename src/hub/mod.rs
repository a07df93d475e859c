//! The reference hub (`zenedge hub`): serves the hub contract of [`crate::sync::wire`].

/// `zenedge hub`: serves until SIGTERM/SIGINT.
pub fn run_command(args: &crate::cli::HubArgs) -> std::process::ExitCode {
    let _ = args;
    eprintln!("zenedge hub: not built yet");
    std::process::ExitCode::FAILURE
}
