//! Operator tools that work beside the daemon.
//!
//! * `zenedge status` ([`status`]), `backup` ([`backup`]), `events` ([`events`]),
//!   `dead-letters` ([`dead_letters`]) and `sync fork` ([`fork`]) talk to the running daemon
//!   over its HTTP API, at the config's `http.listen` (an unspecified address is reached on
//!   loopback), over HTTPS when `http.tls` is set ([`Daemon`]).
//! * `zenedge restore` ([`restore`]), `rebuild` and `verify` ([`rebuild`]) work on the database
//!   of a stopped daemon; [`progress`] is the bar of rebuild and verify.
//! * [`snapshot`] is the daemon's side of a backup: one consistent copy of the database, and
//!   the instance files its events name, each checked against its event.
//!
//! Every command loads its config with [`crate::cli::load_config`] (exit 78 when unusable).

pub mod backup;
pub mod dead_letters;
pub mod events;
pub mod fork;
pub mod progress;
pub mod rebuild;
pub mod restore;
pub mod snapshot;
pub mod status;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::EXIT_CONFIG;
use crate::config::Config;
use crate::log::fsync_dir;

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The running daemon as the commands reach it: the address of its HTTP API and whether it
/// speaks HTTPS there (`http.tls`).
///
/// Over HTTPS the daemon's certificate is not verified: the command runs on the daemon's own
/// box and connects to the daemon's own address, a connection that never leaves the machine
/// (as plain HTTP to it did before), and the config names no CA that issued the daemon's
/// certificate (`tls.client_ca` is the clients' CAs). What HTTPS adds here is only that the
/// API need not also listen in plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    pub addr: SocketAddr,
    pub https: bool,
}

/// A daemon at `addr` over plain HTTP.
impl From<SocketAddr> for Daemon {
    fn from(addr: SocketAddr) -> Daemon {
        Daemon { addr, https: false }
    }
}

impl Daemon {
    /// The daemon of `config` (an unspecified address on loopback).
    pub fn of(config: &Config) -> Daemon {
        Daemon { addr: local_address(config.http.listen), https: config.http.tls }
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// A client for it: no proxy, statuses as values, `timeout` for the whole call if any
    /// (a backup or a followed stream lasts as long as it lasts).
    fn agent(&self, timeout: Option<Duration>) -> ureq::Agent {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(timeout)
            .proxy(None);
        if self.https {
            use ureq::tls::{TlsConfig, TlsProvider};
            let tls = TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .unversioned_rustls_crypto_provider(crate::tls::provider())
                .disable_verification(true)
                .build();
            config = config.tls_config(tls);
        }
        config.build().new_agent()
    }

    /// The message for a daemon that cannot be reached.
    pub(crate) fn unreachable(&self, e: &ureq::Error) -> String {
        unreachable(self.addr, e)
    }
}

/// Where to reach a daemon listening on `listen`: an unspecified address on loopback.
pub fn local_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port()),
        _ => listen,
    }
}

/// The message for a daemon that cannot be reached.
pub(crate) fn unreachable(addr: SocketAddr, e: &ureq::Error) -> String {
    format!("the daemon does not answer at {addr} ({e}); is zenedge running with this config (http.listen)?")
}

/// The operator token of `config`, or the exit code after saying that `what` needs one.
fn operator_token<'a>(config: &'a Config, command: &str, what: &str) -> Result<&'a str, ExitCode> {
    config.http.operator_token.as_deref().ok_or_else(|| {
        eprintln!("zenedge {command}: {what} is an operator action: set http.operator_token in the config");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// A request to the daemon: its status and body (up to 1 MiB), or why there is none.
fn call(daemon: Daemon, method: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let url = daemon.url(path);
    let agent = daemon.agent(None);
    let result = match method {
        "POST" => {
            let mut request = agent.post(&url);
            if let Some(token) = token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            request.send_empty()
        }
        _ => agent.get(&url).call(),
    };
    let mut response = result.map_err(|e| daemon.unreachable(&e))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| format!("unreadable answer from {url}: {e}"))?;
    Ok((status, body))
}

/// The `error` of a JSON error answer, else the body as text.
fn error_text(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    format!("the daemon answered {status}: {message}")
}

#[cfg(test)]
mod tests;
