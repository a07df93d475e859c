//! Configuration: the TOML file → a validated [`Config`] with real types.
//!
//! Three steps, as in ripgrep's low/high arguments: the file is parsed as a TOML table (a
//! syntax error is the only thing that stops the reading); [`shape`] turns it into the
//! [`raw`] mirror key by key (an unknown section or key, or a value of the wrong type, is a
//! problem of that key and the key takes its default); [`validate`] turns the mirror into
//! [`Config`]. Every problem is collected with the key it belongs to, so `zenedge
//! check-config` lists them all in one run, before any port is bound. Relative paths are
//! relative to the working directory (the packaged config uses absolute paths).

mod access;
#[cfg(test)]
mod access_tests;
mod backup;
#[cfg(test)]
mod backup_tests;
mod check;
mod forward;
mod raw;
mod shape;
#[cfg(test)]
mod tests;
mod trust;
mod units;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use access::{ApiClient, OPERATOR_TOKEN_CLIENT, Scope, Scopes, token_sha256};
pub use backup::{BackupConfig, Schedule};
pub use forward::{Confirm, Destination, ForwardConfig};
pub use units::DiskReserve;

/// A duration on the command line, written as in the config file (`"30s"`, `"5m"`).
pub fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    units::duration(text)
}
pub(crate) use units::duration as parse_duration;

use crate::hl7::{Charset, FieldPath};

/// The validated configuration of one edge.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: Site,
    pub store: StoreConfig,
    pub mllp: MllpConfig,
    pub dicom: DicomConfig,
    pub http: HttpConfig,
    pub tls: TlsConfig,
    pub matching: MatchingConfig,
    pub sync: SyncConfig,
    pub retention: RetentionConfig,
    /// Where the images go: the central archive(s).
    pub forward: ForwardConfig,
    pub audit: AuditConfig,
    /// Scheduled backups.
    pub backup: BackupConfig,
    pub daemon: DaemonConfig,
}

/// Who this edge is. Every key the edge stores is scoped by tenant and hospital, and every
/// event it syncs is tagged with the edge id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub tenant_id: String,
    pub hospital_id: String,
    pub edge_id: String,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Holds `zenedge.redb` (and later the DICOM instances).
    pub state_dir: PathBuf,
    /// Free space that must remain; below it new data is refused.
    pub disk_reserve: DiskReserve,
    /// Append requests that may wait for the writer before callers block (backpressure).
    pub queue_depth: usize,
    /// Most requests the writer folds into one commit.
    pub max_batch: usize,
    /// Memory redb may use for its page cache and write buffer (its default is 1 GiB).
    pub cache_size: usize,
    /// Events in the log before a compression dictionary is trained on the site's own (and
    /// how many more before the next check); 0: never ([`crate::log::dictionary`]).
    pub value_dictionary_after: u64,
    /// The master key every data key is wrapped under (`store.master_key_file`; empty in the
    /// file: `<state_dir>/master.key`).
    pub master_key_file: PathBuf,
    /// Seal event values that carry patient data under per-patient keys.
    pub seal: bool,
}

#[derive(Debug, Clone)]
pub struct MllpConfig {
    /// Plain MLLP; `None`: off (only `tls_listen`, if set).
    pub listen: Option<SocketAddr>,
    /// MLLP inside TLS with client certificates required; `None`: off.
    pub tls_listen: Option<SocketAddr>,
    /// Source networks the plain listener accepts connections from; empty: any. Checked at
    /// accept: anyone else is closed at once.
    pub allow_from: Vec<ipnet::IpNet>,
    /// Who may send as which MSH-3/MSH-4; empty: any sender that reached a listener.
    pub senders: Vec<MllpSender>,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Frames larger than this are discarded as they stream in and answered `AE`.
    pub max_message_bytes: usize,
    /// A connection with no complete frame for this long is closed.
    pub idle_timeout: Duration,
    /// A frame must be complete within this time of its first byte, however steadily its
    /// bytes arrive (each byte resets `idle_timeout`, not this); else the connection closes.
    pub frame_timeout: Duration,
    /// Where the accession number is looked for, first non-empty wins.
    pub accession_from: Vec<FieldPath>,
    /// Used to decode the summary when MSH-18 is unknown or the bytes don't fit it.
    pub fallback_charset: Charset,
}

#[derive(Debug, Clone)]
pub struct DicomConfig {
    /// Plain DICOM; `None`: off (only `tls_listen`, if set).
    pub listen: Option<SocketAddr>,
    /// DICOM inside TLS (PS3.15 BCP 195 profile) with client certificates required; `None`: off.
    pub tls_listen: Option<SocketAddr>,
    /// Our AE title: the called AE title associations must name.
    pub ae_title: String,
    /// Accept associations whatever called AE title they name.
    pub accept_any_called_ae: bool,
    /// Calling AE titles allowed to associate, each optionally tied to source addresses and
    /// to a client certificate; empty: any calling AE.
    pub calling_ae_allow: Vec<CallingAe>,
    /// Accept presentation contexts for SOP classes the standard dictionary does not know.
    pub accept_unknown_sop_classes: bool,
    /// Concurrent associations; more wait in the kernel's accept queue.
    pub max_associations: usize,
    /// Largest P-DATA PDU we accept (advertised in the A-ASSOCIATE-AC).
    pub max_pdu_length: u32,
    /// An association that sends nothing for this long is aborted.
    pub read_timeout: Duration,
    /// A PDU must arrive whole within this time of its first byte (each read resets
    /// `read_timeout`, not this); else the association is aborted.
    pub pdu_timeout: Duration,
    /// A peer that does not take our bytes for this long is aborted.
    pub write_timeout: Duration,
    /// Quiet time after the last instance of a study before `StudyCompleted`.
    pub stable_after: Duration,
    /// Serve the modality worklist (MWL C-FIND) on the DICOM listeners.
    pub worklist: bool,
    /// A worklist query that leaves Scheduled Station AE Title empty gets only the calling
    /// AE's items (modalities that never fill it in).
    pub worklist_filter_by_calling_ae: bool,
    /// COMPLETED items are answered too (hidden by default).
    pub worklist_show_completed: bool,
    /// Most items one worklist query answers; more are cut off (and the cut is logged).
    pub worklist_max_results: usize,
    /// How instance files are made durable (see [`crate::dicom::flush`]).
    pub flush: FlushMode,
    /// The archives whose Storage Commitment reports are taken, as (destination name, its AE
    /// title): the forwarding destinations that confirm by commitment. Not a key of
    /// `[dicom]`, derived from `[forward]`.
    pub commitment_archives: Vec<(String, String)>,
}

/// How C-STORE makes instance files durable before their events are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Instances completed at about the same time, on any association, share one `syncfs`
    /// of the state directory's file system and one commit.
    Shared,
    /// Each instance file and its directory are fsync'ed on their own (for a state directory
    /// on a file system other programs write much to: `syncfs` would flush their data too).
    Each,
}

/// One entry of the calling AE allow-list: `AE`, `AE@address[/prefix]`, or a table
/// `{ ae = "AE", from = "...", certificate = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingAe {
    pub ae_title: String,
    /// Source networks the AE may connect from; `None`: any address.
    pub from: Option<ipnet::IpNet>,
    /// The client certificate the AE must present (over TLS); `None`: any, or none.
    pub certificate: Option<CertificateMatch>,
}

impl CallingAe {
    /// Whether `ae_title` connecting from `addr` matches this entry's AE title and network
    /// (the certificate is the caller's to compare: see `crate::security::PeerIdentity`).
    pub fn matches(&self, ae_title: &str, addr: std::net::IpAddr) -> bool {
        self.ae_title == ae_title && self.from.is_none_or(|net| net.contains(&addr))
    }
}

/// A client certificate as the configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateMatch {
    /// Its subject common name, or one of its subject alternative names (DNS name, e-mail,
    /// URI or IP address, written without a prefix).
    Name(String),
    /// The SHA-256 digest of the whole certificate (DER), written `sha256:<64 hex digits>`
    /// (colons between byte pairs allowed, as `openssl x509 -fingerprint -sha256` prints it).
    Sha256([u8; 32]),
}

impl fmt::Display for CertificateMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateMatch::Name(name) => write!(f, "{name}"),
            CertificateMatch::Sha256(digest) => write!(f, "sha256:{}", crate::ids::hex(digest)),
        }
    }
}

/// One `[[mllp.senders]]` entry: a connection identity and what it may send as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MllpSender {
    /// For logs and refusals (`name`, else `senders[<index>]`).
    pub name: String,
    /// The client certificate of the connection; `None`: any (or a plain connection).
    pub certificate: Option<CertificateMatch>,
    /// Source networks of the connection; empty: any.
    pub from: Vec<ipnet::IpNet>,
    /// MSH-3 values (decoded, HD.1 else HD.2) it may send; empty: any.
    pub sending_applications: Vec<String>,
    /// MSH-4 values (decoded, HD.1 else HD.2) it may send; empty: any.
    pub sending_facilities: Vec<String>,
}

impl MllpSender {
    /// Whether a connection from `addr` matches this entry's networks (the certificate is
    /// the caller's to compare).
    pub fn from_matches(&self, addr: std::net::IpAddr) -> bool {
        self.from.is_empty() || self.from.iter().any(|net| net.contains(&addr))
    }

    /// Whether this entry lets its connections send as `application` / `facility`.
    pub fn allows(&self, application: &str, facility: &str) -> bool {
        let ok = |values: &[String], value: &str| values.is_empty() || values.iter().any(|v| v == value);
        ok(&self.sending_applications, application) && ok(&self.sending_facilities, facility)
    }
}

/// The edge's own TLS identity, shared by every TLS listener (see `crate::tls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `None`: no TLS listener may be configured.
    pub files: Option<TlsFiles>,
    /// A TLS handshake must be done within this time of the accept; else the connection is
    /// closed (half-open and slow handshakes).
    pub handshake_timeout: Duration,
}

/// The `[tls]` files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This edge's certificate chain, its own certificate first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CAs whose client certificates are trusted; `None`: no client certificates (HTTPS
    /// only).
    pub client_ca: Option<PathBuf>,
    /// Certificate revocation lists of those CAs; `None`: no revocation check.
    pub crl: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct MatchingConfig {
    /// How long after its creation a patient case takes further studies of its patient.
    pub consolidation_window: Duration,
    /// Overrides of the window by hospital id.
    pub hospital_windows: std::collections::BTreeMap<String, Duration>,
}

impl MatchingConfig {
    /// The window for `hospital_id`.
    pub fn consolidation_window_for(&self, hospital_id: &str) -> Duration {
        self.hospital_windows.get(hospital_id).copied().unwrap_or(self.consolidation_window)
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// HTTPS with the `[tls]` identity (client certificates optional).
    pub tls: bool,
    /// A request's headers must arrive within this time (also the longest a kept-alive
    /// connection may sit idle); else the connection is closed.
    pub header_timeout: Duration,
    /// Deprecated: a bearer token for operator actions, served as the client
    /// `operator-token` with scope `operator` (in `clients`); `None`: not set.
    pub operator_token: Option<String>,
    /// Largest request head (request line and headers) read; a larger one is refused with 431
    /// before it is all received (a megabyte `Authorization` header costs this much at most).
    pub max_header_bytes: usize,
    /// The named API clients, `operator_token`'s included; see [`crate::api`] for the rules.
    pub clients: Vec<ApiClient>,
    /// `/metrics` without a token (Prometheus scrapers); else it needs scope `status`.
    pub metrics_open: bool,
    /// Requests per second one source address may make (bursts of as many); beyond: 429.
    pub requests_per_second: u32,
    /// Failed authentications one source address may make per minute; beyond: 429 for
    /// every request that presents a token until the minute has refilled.
    pub auth_failures_per_minute: u32,
}

/// Upstream sync to the hub; see [`crate::sync`].
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// `None`: sync is off.
    pub hub: Option<HubEndpoint>,
    /// Most events in one batch.
    pub batch_max_events: usize,
    /// Most envelope bytes (before gzip) in one batch; a larger single event goes alone.
    pub batch_max_bytes: usize,
    /// How long a batch that is not full waits for more events.
    pub linger: Duration,
    pub connect_timeout: Duration,
    /// Longest wait for the hub's answer to one batch.
    pub timeout: Duration,
    /// First retry delay; it doubles per failure up to `retry_cap` (full jitter).
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe batch (half-open).
    pub breaker_open: Duration,
    /// While idle, the edge asks the hub for its position this often, so that a hub
    /// restored from an older backup is refilled without waiting for the next event.
    pub position_check_interval: Duration,
}

/// Where and how to reach the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEndpoint {
    /// Base URL without a trailing slash (`https://hub.example:8443`).
    pub url: String,
    /// CA bundle (PEM) the hub's certificate must chain to; `None` with plain HTTP only.
    pub ca_file: Option<PathBuf>,
    /// This edge's certificate chain and key (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Deleting old DICOM files, only once the hub has their events (off by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Files whose `InstanceStored` is older than this may be deleted; `None`: never.
    pub dicom_max_age: Option<Duration>,
    /// How `dicom_max_age` was written (recorded in each `InstanceFileDeleted`).
    pub dicom_max_age_text: String,
    /// How often the sweep runs.
    pub interval: Duration,
}

/// Where the audit trail is forwarded (it is always kept in the database), and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// `audit.syslog`: every record as RFC 5424 syslog; `None`: not forwarded.
    pub syslog: Option<SyslogTarget>,
    /// `audit.retention`: records are kept at least this long (and until forwarded).
    pub retention: Duration,
    /// `audit.journal`: the records of API reads are made durable in the audit journal
    /// ([`crate::audit::journal`]) instead of a commit of the database each.
    pub journal: bool,
}

/// A syslog collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    /// `udp://host:port`: one datagram per record (RFC 5426).
    Udp { host: String, port: u16 },
    /// `tls://host:port`: octet-counted frames over TLS (RFC 5425) with the sync's client
    /// certificate, the collector's certificate checked against `sync.ca_file` and `host`.
    Tls { host: String, port: u16 },
}

impl SyslogTarget {
    /// `host:port`, for connecting and for messages.
    pub fn address(&self) -> String {
        let (SyslogTarget::Udp { host, port } | SyslogTarget::Tls { host, port }) = self;
        if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
    }
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// After SIGTERM, in-flight work gets this long to finish before it is cut off.
    pub shutdown_grace: Duration,
    /// Default tracing filter (`RUST_LOG` overrides it).
    pub log_level: String,
}

/// One thing wrong with the configuration, tied to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Syntax(String),
    #[error("{}", display_problems(.0))]
    Invalid(Vec<Problem>),
}

fn display_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{}: {}", p.key, p.reason)).collect::<Vec<_>>().join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text)
    }

    /// Parses and validates config text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        let mut checker = check::Checker::default();
        let raw = shape::read(&mut checker, table);
        validate::validate(raw, checker)
    }

    /// The redb file of the event log.
    pub fn database_path(&self) -> PathBuf {
        self.store.state_dir.join("zenedge.redb")
    }

    /// What is allowed but unwise, as `key: warning` lines: plain listeners on addresses other
    /// than loopback, bindings to certificates no listener can present. `check-config` prints
    /// them, `serve` logs them at WARN.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = trust::warnings(self);
        warnings.extend(access::warnings(&self.http));
        warnings.extend(backup::warnings(&self.backup));
        warnings
    }
}
