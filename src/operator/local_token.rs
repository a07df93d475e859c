//! The local operator's token: how `zenedge status`, `events`, `backup` and `dead-letters`
//! reach the daemon's API as root or as the service user without a token pasted anywhere.
//!
//! At every start the daemon draws a fresh random token and writes it to
//! `<state_dir>/local-api.token`, mode 0600, owned by the user the daemon runs as (a temp
//! file, fsync'ed, renamed): only that user and root can read it, which is who may run the
//! operator commands on the box. The daemon serves the token's holder as the client `local`
//! with every scope. The commands read the file and present the token; a user who cannot
//! read it is refused by the API like any anonymous caller. A new start replaces the token,
//! so a copy taken once stops working at the next restart. When the file cannot be written
//! (a full disk: the daemon must still start, refuse intake and answer `/readyz`), the token
//! of the previous start stays in use if it can be read; else there is no local operator
//! until the next start, and a WARN says so ([`open`]).
//!
//! This is a file rather than a Unix socket with `SO_PEERCRED`: the CLI's HTTP client
//! speaks TCP (and HTTPS with `http.tls`), and the state directory is where the service user
//! may already write under the systemd sandbox; the file needs neither another listener nor
//! another address family.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file's name in the state directory.
pub const FILE: &str = "local-api.token";

/// Where the token of the daemon with state directory `state_dir` is.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// The local operator's token hash for the API: a fresh one ([`create`]), else the previous
/// start's, else none; never an error that stops the start.
pub fn open(state_dir: &Path) -> Option<[u8; 32]> {
    let error = match create(state_dir) {
        Ok(hash) => return Some(hash),
        Err(e) => e,
    };
    match read(state_dir) {
        Ok(token) if !token.is_empty() => {
            tracing::warn!(error = %error, file = %path(state_dir).display(), "cannot write a new local operator token: the previous one stays in use");
            Some(crate::config::token_sha256(token.as_bytes()))
        }
        _ => {
            tracing::warn!(error = %error, file = %path(state_dir).display(), "cannot write the local operator token: operator commands on this box need a client token until the next start");
            None
        }
    }
}

/// Draws a token, writes it to the file, and returns its SHA-256 for the API.
pub fn create(state_dir: &Path) -> io::Result<[u8; 32]> {
    let token = new_token()?;
    let temp = state_dir.join(format!(".{FILE}.tmp"));
    let _ = fs::remove_file(&temp);
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temp, path(state_dir))?;
        crate::log::fsync_dir(state_dir)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(crate::config::token_sha256(token.as_bytes()))
}

/// The token of the daemon with state directory `state_dir`, if this user may read it.
pub fn read(state_dir: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(path(state_dir))?.trim().to_owned())
}

/// A fresh token: 32 random bytes from the operating system, as `zt_` and 64 hex digits
/// (the prefix lets secret scanners recognise a leaked one).
pub fn new_token() -> io::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| io::Error::other("no randomness from the OS"))?;
    Ok(format!("zt_{}", crate::ids::hex(&bytes)))
}
