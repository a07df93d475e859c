//! Reaching the database: the URL and its TLS mode, the connection pool, and the one
//! connection that is not pooled (the one that LISTENs).
//!
//! TLS to the database goes through rustls with ring (the project's only crypto provider).
//! Two modes, named as libpq names them in the URL's `sslmode`: `verify-full` (TLS required,
//! the server's certificate must chain to the CA file — `sslrootcert` in the URL, or
//! `ca_file` — and name the host) and `disable` (plain: a Unix socket or a link the operator
//! trusts; the default when `sslmode` is absent, logged at WARN for a TCP host). The modes
//! that encrypt without checking who answers (`allow`, `prefer`, `require`, `verify-ca`) are
//! refused with a message saying what to use instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode};

use super::super::HubError;

/// How the hub reaches PostgreSQL: the `hub.postgres` table of a hub configuration file, or
/// `--postgres URL` with `--postgres-ca` and `--postgres-pool`.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// A libpq connection URL (`postgres://user@host:port/db?sslmode=verify-full`) or
    /// key=value string. Holds the password if there is one: never logged.
    pub url: String,
    /// The CA bundle the server's certificate must chain to (`sslmode=verify-full`); the
    /// URL's `sslrootcert` wins when both are given.
    pub ca_file: Option<PathBuf>,
    /// Connections the pool keeps open at most (one per batch or read in flight).
    pub pool_size: usize,
    /// How long connecting (TLS included) and waiting for a pooled connection may take.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &"***")
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PgSettings {
    /// Defaults for a URL: 16 connections, 5 s to connect.
    pub fn new(url: impl Into<String>) -> PgSettings {
        PgSettings { url: url.into(), ca_file: None, pool_size: 16, connect_timeout: Duration::from_secs(5) }
    }
}

/// TLS to the database, as resolved from `sslmode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTlsMode {
    Disable,
    /// TLS with the server's certificate checked against this CA bundle and the host name.
    VerifyFull {
        ca_file: PathBuf,
    },
}

/// A checked connection configuration.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: tokio_postgres::Config,
    pub tls: PgTlsMode,
}

fn config_error(problem: impl Into<String>) -> HubError {
    HubError::PgConfig(problem.into())
}

/// Takes `sslmode` and `sslrootcert` out of `url` (tokio-postgres knows neither
/// `verify-full` nor `sslrootcert`) and parses the rest.
pub fn resolve(settings: &PgSettings) -> Result<Resolved, HubError> {
    let (rest, sslmode, rootcert) = split_tls_options(&settings.url);
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| config_error(format!("the PostgreSQL URL does not parse (password not shown): {e}")))?;
    config.connect_timeout(settings.connect_timeout);
    config.application_name("zenedge-hub");
    let tls = match sslmode.as_deref() {
        None | Some("disable") => PgTlsMode::Disable,
        Some("verify-full") => {
            let ca_file = rootcert.map(PathBuf::from).or_else(|| settings.ca_file.clone()).ok_or_else(|| {
                config_error("sslmode=verify-full needs a CA file: sslrootcert=FILE in the URL, or ca_file")
            })?;
            config.ssl_mode(SslMode::Require);
            PgTlsMode::VerifyFull { ca_file }
        }
        Some(other) => {
            return Err(config_error(format!(
                "sslmode={other} is not supported: the hub checks who it talks to; use sslmode=verify-full with a \
                 CA file, or sslmode=disable on a Unix socket or a link you trust"
            )));
        }
    };
    if config.get_hosts().is_empty() {
        return Err(config_error("the PostgreSQL URL names no host (a host name, an address or a socket directory)"));
    }
    if config.get_dbname().is_none() {
        return Err(config_error("the PostgreSQL URL names no database"));
    }
    Ok(Resolved { config, tls })
}

/// `url` without its `sslmode` and `sslrootcert` options, and their values.
fn split_tls_options(url: &str) -> (String, Option<String>, Option<String>) {
    let (mut sslmode, mut rootcert) = (None, None);
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            sslmode = Some(value.to_owned());
            true
        }
        "sslrootcert" => {
            rootcert = Some(value.to_owned());
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, &percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        url.split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k.trim(), v.trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, sslmode, rootcert)
}

/// `%XX` escapes of a URL query value (a CA file's path may hold them).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the database is, for logs: hosts, port and database name (no user, no password).
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{}:{port}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
}

/// Whether every host is a Unix socket or a loopback address.
fn is_local(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    })
}

/// The rustls client configuration for `verify-full`: ring, the CA file's certificates as the
/// only roots, no client certificate.
fn rustls_config(ca_file: &Path) -> Result<rustls::ClientConfig, HubError> {
    crate::hub::server::install_crypto_provider();
    let pem = std::fs::read(ca_file)
        .map_err(|e| config_error(format!("{}: cannot read the database's CA file: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| config_error(format!("{}: not a PEM CA file: {e:?}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| config_error(format!("{}: not a usable CA certificate: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(config_error(format!("{}: holds no CA certificate", ca_file.display())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Checks `settings` without connecting: the URL parses, the TLS mode is one the hub
/// supports, and for `verify-full` the CA file holds a usable certificate.
pub fn check(settings: &PgSettings) -> Result<(), HubError> {
    let resolved = resolve(settings)?;
    if let PgTlsMode::VerifyFull { ca_file } = &resolved.tls {
        rustls_config(ca_file)?;
    }
    Ok(())
}

/// A connection refused because TLS to the database cannot be what `sslmode` asks: the
/// server's certificate is not from the CA file or does not name the URL's host, or the server
/// does not speak TLS. Trying again does not help, so at start this is a configuration error
/// (exit 78) that names the problem; the password is never part of it.
pub fn tls_refusal(e: &tokio_postgres::Error, resolved: &Resolved) -> Option<HubError> {
    let PgTlsMode::VerifyFull { ca_file } = &resolved.tls else { return None };
    let database = describe(&resolved.config);
    let problem = match find_rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(cert)) => certificate_problem(cert, ca_file),
        Some(other) => format!("the TLS handshake failed: {other}"),
        None if super::describe_error(e).contains("server does not support TLS") => {
            "the server does not accept TLS (ssl = off in postgresql.conf?)".to_owned()
        }
        None => return None,
    };
    Some(config_error(format!("PostgreSQL at {database} with sslmode=verify-full: {problem}")))
}

/// What is wrong with the server's certificate, in an operator's words.
fn certificate_problem(cert: &rustls::CertificateError, ca_file: &Path) -> String {
    use rustls::CertificateError as E;
    match cert {
        E::UnknownIssuer | E::BadSignature => format!(
            "the server's certificate does not chain to a CA in {} (the wrong CA file, or the server's \
             certificate is from another CA)",
            ca_file.display()
        ),
        E::NotValidForName => {
            "the server's certificate does not name the host of the URL: connect by a name it holds".to_owned()
        }
        E::NotValidForNameContext { expected, presented } => format!(
            "the server's certificate does not name the host of the URL ({}); it names {}: connect by a name it holds",
            server_name(expected),
            presented.join(", ")
        ),
        E::Expired | E::ExpiredContext { .. } => "the server's certificate has expired".to_owned(),
        E::NotValidYet | E::NotValidYetContext { .. } => "the server's certificate is not valid yet".to_owned(),
        other => format!("the server's certificate is refused: {other}"),
    }
}

fn server_name(name: &rustls::pki_types::ServerName<'_>) -> String {
    match name {
        rustls::pki_types::ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        rustls::pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// The rustls error under a connection error, if there is one (an I/O error from the TLS
/// stream holds it inside, where `source()` does not reach).
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(found) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The pool of connections the routes use.
pub fn pool(resolved: &Resolved, settings: &PgSettings) -> Result<Pool, HubError> {
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match &resolved.tls {
        PgTlsMode::Disable => {
            if !is_local(&resolved.config) {
                tracing::warn!(
                    database = %describe(&resolved.config),
                    "the connection to PostgreSQL is not encrypted (sslmode=disable or absent): use sslmode=verify-full \
                     on any link that leaves this machine"
                );
            }
            Manager::from_config(resolved.config.clone(), tokio_postgres::NoTls, manager_config)
        }
        PgTlsMode::VerifyFull { ca_file } => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(ca_file)?);
            Manager::from_config(resolved.config.clone(), tls, manager_config)
        }
    };
    Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .wait_timeout(Some(settings.connect_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| config_error(format!("cannot build the connection pool: {e}")))
}

/// One connection outside the pool, and its driver (the caller polls it, for
/// notifications).
pub async fn connect_one(resolved: &Resolved) -> Result<(tokio_postgres::Client, Box<dyn ConnectionDriver>), HubError> {
    match &resolved.tls {
        PgTlsMode::Disable => {
            let (client, connection) = resolved.config.connect(tokio_postgres::NoTls).await.map_err(super::db_error)?;
            Ok((client, Box::new(connection)))
        }
        PgTlsMode::VerifyFull { ca_file } => {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(ca_file)?);
            let (client, connection) = resolved.config.connect(tls).await.map_err(super::db_error)?;
            Ok((client, Box::new(connection)))
        }
    }
}

/// A connection's driver, whatever its stream: yields its notices and notifications.
pub trait ConnectionDriver: Send {
    fn poll_message(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<tokio_postgres::AsyncMessage, tokio_postgres::Error>>>;
}

impl<S, T> ConnectionDriver for tokio_postgres::Connection<S, T>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    fn poll_message(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<tokio_postgres::AsyncMessage, tokio_postgres::Error>>> {
        tokio_postgres::Connection::poll_message(self, cx)
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
