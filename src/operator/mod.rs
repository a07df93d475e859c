//! Operator tools that work beside the daemon.
//!
//! * `zenedge status` ([`status`]), `backup` ([`backup`]), `events` ([`events`]),
//!   `dead-letters` ([`dead_letters`]) and `sync fork` ([`fork`]) talk to the running daemon
//!   over its HTTP API, at the config's `http.listen` (an unspecified address is reached on
//!   loopback), over HTTPS when `http.tls` is set ([`Daemon`]), with the local operator's
//!   token ([`local_token`]; root and the service user can read it) or, failing that, the
//!   deprecated `http.operator_token`.
//! * `zenedge restore` ([`restore`]), `rebuild` and `verify` ([`rebuild`]) work on the database
//!   of a stopped daemon, and `disk-usage` ([`disk_usage`]) shows what each of its tables
//!   holds on disk; [`progress`] is the bar of rebuild and verify.
//! * [`snapshot`] is the daemon's side of a backup: one consistent copy of the database, and
//!   the instance files its events name, each checked against its event.
//!
//! Every command loads its config with [`crate::cli::load_config`] (exit 78 when unusable).

pub mod backup;
pub mod dead_letters;
pub mod disk_usage;
pub mod events;
pub mod export;
pub mod fork;
pub mod local_token;
pub mod progress;
pub mod rebuild;
pub mod restore;
pub mod snapshot;
pub mod status;
pub mod token;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub addr: SocketAddr,
    pub https: bool,
    /// The bearer token presented; `None`: requests go anonymous (and are refused).
    pub token: Option<Arc<str>>,
    /// Where the local token was looked for, for the message when there is none.
    pub token_file: Option<PathBuf>,
}

/// A daemon at `addr` over plain HTTP, asked without a token.
impl From<SocketAddr> for Daemon {
    fn from(addr: SocketAddr) -> Daemon {
        Daemon { addr, https: false, token: None, token_file: None }
    }
}

/// A daemon at `addr` over plain HTTP, asked with `token`.
impl From<(SocketAddr, &str)> for Daemon {
    fn from((addr, token): (SocketAddr, &str)) -> Daemon {
        Daemon { token: Some(token.into()), ..Daemon::from(addr) }
    }
}

impl Daemon {
    /// The daemon of `config` (an unspecified address on loopback), with the local
    /// operator's token when this user can read it, else `http.operator_token` if set.
    pub fn of(config: &Config) -> Daemon {
        let token_file = local_token::path(&config.store.state_dir);
        let token = local_token::read(&config.store.state_dir)
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| config.http.operator_token.clone());
        Daemon {
            addr: local_address(config.http.listen),
            https: config.http.tls,
            token: token.map(Arc::from),
            token_file: Some(token_file),
        }
    }

    /// `request` with the daemon's token, if there is one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// The token, or the exit code after saying that `what` (of `command`) needs one.
    fn require_token(&self, command: &str, what: &str) -> Result<(), ExitCode> {
        if self.token.is_some() {
            return Ok(());
        }
        eprintln!("zenedge {command}: {what} is an operator action: {}", self.how_to_authenticate());
        Err(ExitCode::from(EXIT_CONFIG))
    }

    /// What an operator must do to be let in.
    fn how_to_authenticate(&self) -> String {
        let file = self.token_file.as_ref().map_or_else(String::new, |f| format!(" ({})", f.display()));
        format!(
            "run it as root or as the daemon's user, who can read the local token{file}, or set \
             http.operator_token in the config"
        )
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

/// A request to the daemon with its token: its status and body (up to 1 MiB), or why there
/// is none.
fn call(daemon: &Daemon, method: &str, path: &str) -> Result<(u16, String), String> {
    let url = daemon.url(path);
    let agent = daemon.agent(None);
    let result = match method {
        "POST" => daemon.authorized(agent.post(&url)).send_empty(),
        _ => daemon.authorized(agent.get(&url)).call(),
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

/// The `error` of a JSON error answer, else the body as text; after a 401, what to do.
fn error_text(daemon: &Daemon, status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    let hint = if status == 401 { format!("; {}", daemon.how_to_authenticate()) } else { String::new() };
    format!("the daemon answered {status}: {message}{hint}")
}

#[cfg(test)]
mod tests;
