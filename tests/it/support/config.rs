//! Config files for the commands a test runs (`zenedge backup`, `status`, `rebuild`…): the
//! test daemon's site (`t1`/`h1`/`e1`, as [`super::daemon::test_config`]), state in a temp
//! directory, no disk reserve, and whatever the test adds.

use std::path::{Path, PathBuf};

/// Writes a config to `path` with the state directory `state` and `extra` (whole TOML
/// sections, e.g. `[http]`) after the site and store sections; returns `path`.
pub fn write(path: &Path, state: &Path, extra: &str) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[site]\ntenant_id = \"t1\"\nhospital_id = \"h1\"\nedge_id = \"e1\"\n\
             [store]\nstate_dir = {state:?}\ndisk_reserve = \"0\"\n{extra}",
            state = state.display().to_string(),
        ),
    )
    .unwrap();
    path.to_owned()
}

/// As [`write`], for commands that talk to the daemon whose API is at `http`, with the
/// operator token `token` if given. The commands present the local operator's token when
/// `state` is the daemon's state directory (as root on the box would), else `token`.
pub fn write_for_daemon(path: &Path, state: &Path, http: std::net::SocketAddr, token: Option<&str>) -> PathBuf {
    let token = token.map(|t| format!("operator_token = \"{t}\"\n")).unwrap_or_default();
    write(path, state, &format!("[http]\nlisten = \"{http}\"\n{token}"))
}
