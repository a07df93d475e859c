//! Configuration: the TOML file → a validated [`Config`] with real types.
//!
//! Two steps, as in ripgrep's low/high arguments: [`raw`] mirrors the file (unknown keys are
//! errors), [`validate`] turns it into [`Config`] and collects *every* problem with the key
//! it belongs to, so `zenedge check-config` can list them all before any port is bound.
//! Relative paths are relative to the working directory (the packaged config uses absolute
//! paths).

mod raw;
mod units;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use units::DiskReserve;
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
    pub matching: MatchingConfig,
    pub sync: SyncConfig,
    pub retention: RetentionConfig,
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
}

#[derive(Debug, Clone)]
pub struct MllpConfig {
    pub listen: SocketAddr,
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
    pub listen: SocketAddr,
    /// Our AE title: the called AE title associations must name.
    pub ae_title: String,
    /// Accept associations whatever called AE title they name.
    pub accept_any_called_ae: bool,
    /// Calling AE titles allowed to associate, each optionally tied to source addresses;
    /// empty: any calling AE.
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
}

/// One entry of the calling AE allow-list: `AE` or `AE@address[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingAe {
    pub ae_title: String,
    /// Source networks the AE may connect from; `None`: any address.
    pub from: Option<ipnet::IpNet>,
}

impl CallingAe {
    /// Whether `ae_title` connecting from `addr` matches this entry.
    pub fn matches(&self, ae_title: &str, addr: std::net::IpAddr) -> bool {
        self.ae_title == ae_title && self.from.is_none_or(|net| net.contains(&addr))
    }
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
    /// A request's headers must arrive within this time (also the longest a kept-alive
    /// connection may sit idle); else the connection is closed.
    pub header_timeout: Duration,
    /// Bearer token for operator actions (dead-letter retry/skip); `None`: those are refused.
    pub operator_token: Option<String>,
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
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        validate(raw)
    }

    /// The redb file of the event log.
    pub fn database_path(&self) -> PathBuf {
        self.store.state_dir.join("zenedge.redb")
    }
}

/// Collects problems while converting, so all of them are reported at once.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|reason| self.problems.push(Problem { key: key.into(), reason })).ok()
    }
}

fn validate(raw: raw::RawConfig) -> Result<Config, ConfigError> {
    let mut c = Checker::default();
    let site = Site {
        tenant_id: c.check("site.tenant_id", identifier(&raw.site.tenant_id)).unwrap_or_default(),
        hospital_id: c.check("site.hospital_id", identifier(&raw.site.hospital_id)).unwrap_or_default(),
        edge_id: c.check("site.edge_id", identifier(&raw.site.edge_id)).unwrap_or_default(),
    };
    let store = StoreConfig {
        state_dir: c.check("store.state_dir", non_empty_path(&raw.store.state_dir)).unwrap_or_default(),
        disk_reserve: c
            .check("store.disk_reserve", units::disk_reserve(&raw.store.disk_reserve))
            .unwrap_or(DiskReserve::Bytes(0)),
        queue_depth: c.check("store.queue_depth", in_range(raw.store.queue_depth, 1, 1 << 20)).unwrap_or(1),
        max_batch: c.check("store.max_batch", in_range(raw.store.max_batch, 1, 1 << 16)).unwrap_or(1),
        cache_size: c.check("store.cache_size", cache_size(&raw.store.cache_size)).unwrap_or(1),
    };
    let mllp = MllpConfig {
        listen: c.check("mllp.listen", socket_addr(&raw.mllp.listen)).unwrap_or(UNSPECIFIED),
        max_connections: c.check("mllp.max_connections", in_range(raw.mllp.max_connections, 1, 65_536)).unwrap_or(1),
        max_message_bytes: c.check("mllp.max_message_bytes", message_size(&raw.mllp.max_message_bytes)).unwrap_or(1),
        idle_timeout: c
            .check("mllp.idle_timeout", units::positive_duration(&raw.mllp.idle_timeout))
            .unwrap_or_default(),
        frame_timeout: c
            .check("mllp.frame_timeout", units::positive_duration(&raw.mllp.frame_timeout))
            .unwrap_or_default(),
        accession_from: c.check("mllp.accession_from", field_paths(&raw.mllp.accession_from)).unwrap_or_default(),
        fallback_charset: c
            .check("mllp.fallback_charset", charset(&raw.mllp.fallback_charset))
            .unwrap_or(Charset::Iso8859_1),
    };
    let dicom = DicomConfig {
        listen: c.check("dicom.listen", socket_addr(&raw.dicom.listen)).unwrap_or(UNSPECIFIED),
        ae_title: c.check("dicom.ae_title", ae_title(&raw.dicom.ae_title)).unwrap_or_default(),
        accept_any_called_ae: raw.dicom.accept_any_called_ae,
        calling_ae_allow: c
            .check("dicom.calling_ae_allow", raw.dicom.calling_ae_allow.iter().map(|v| calling_ae(v)).collect())
            .unwrap_or_default(),
        accept_unknown_sop_classes: raw.dicom.accept_unknown_sop_classes,
        max_associations: c.check("dicom.max_associations", in_range(raw.dicom.max_associations, 1, 4096)).unwrap_or(1),
        max_pdu_length: c.check("dicom.max_pdu_length", pdu_length(&raw.dicom.max_pdu_length)).unwrap_or(16384),
        read_timeout: c
            .check("dicom.read_timeout", units::positive_duration(&raw.dicom.read_timeout))
            .unwrap_or_default(),
        pdu_timeout: c.check("dicom.pdu_timeout", units::positive_duration(&raw.dicom.pdu_timeout)).unwrap_or_default(),
        write_timeout: c
            .check("dicom.write_timeout", units::positive_duration(&raw.dicom.write_timeout))
            .unwrap_or_default(),
        stable_after: c
            .check("dicom.stable_after", units::positive_duration(&raw.dicom.stable_after))
            .unwrap_or_default(),
    };
    let http = HttpConfig {
        listen: c.check("http.listen", socket_addr(&raw.http.listen)).unwrap_or(UNSPECIFIED),
        header_timeout: c
            .check("http.header_timeout", units::positive_duration(&raw.http.header_timeout))
            .unwrap_or_default(),
        operator_token: c.check("http.operator_token", operator_token(&raw.http.operator_token)).unwrap_or_default(),
    };
    let sync = sync_config(&mut c, &raw.sync);
    let matching = MatchingConfig {
        consolidation_window: c
            .check("matching.consolidation_window", units::duration(&raw.matching.consolidation_window))
            .unwrap_or_default(),
        hospital_windows: raw
            .matching
            .hospital_windows
            .iter()
            .filter_map(|(hospital, window)| {
                let key = format!("matching.hospital_windows.{hospital}");
                c.check(&key, units::duration(window)).map(|w| (hospital.clone(), w))
            })
            .collect(),
    };
    let max_age = raw.retention.dicom_max_age.trim();
    let retention = RetentionConfig {
        dicom_max_age: if max_age.is_empty() {
            None
        } else {
            c.check("retention.dicom_max_age", units::positive_duration(max_age))
        },
        dicom_max_age_text: max_age.to_owned(),
        interval: c.check("retention.interval", units::positive_duration(&raw.retention.interval)).unwrap_or_default(),
    };
    let daemon = DaemonConfig {
        shutdown_grace: c
            .check("daemon.shutdown_grace", units::duration(&raw.daemon.shutdown_grace))
            .unwrap_or_default(),
        log_level: c.check("daemon.log_level", log_level(&raw.daemon.log_level)).unwrap_or_default(),
    };
    if c.problems.is_empty() {
        Ok(Config { site, store, mllp, dicom, http, matching, sync, retention, daemon })
    } else {
        Err(ConfigError::Invalid(c.problems))
    }
}

fn sync_config(c: &mut Checker, raw: &raw::RawSync) -> SyncConfig {
    let duration = |c: &mut Checker, key: &str, value: &str| {
        c.check(&format!("sync.{key}"), units::positive_duration(value)).unwrap_or(Duration::from_secs(1))
    };
    SyncConfig {
        hub: c.check("sync.hub_url", hub_endpoint(raw)).flatten(),
        batch_max_events: c.check("sync.batch_max_events", in_range(raw.batch_max_events, 1, 100_000)).unwrap_or(1),
        batch_max_bytes: c
            .check(
                "sync.batch_max_bytes",
                units::size(&raw.batch_max_bytes).and_then(|b| in_range(b as usize, 1024, 1 << 30)),
            )
            .unwrap_or(1024),
        linger: c.check("sync.linger", units::duration(&raw.linger)).unwrap_or_default(),
        connect_timeout: duration(c, "connect_timeout", &raw.connect_timeout),
        timeout: duration(c, "timeout", &raw.timeout),
        retry_base: duration(c, "retry_base", &raw.retry_base),
        retry_cap: duration(c, "retry_cap", &raw.retry_cap),
        breaker_failures: c
            .check("sync.breaker_failures", in_range(raw.breaker_failures as usize, 1, 1000))
            .unwrap_or(1) as u32,
        breaker_open: duration(c, "breaker_open", &raw.breaker_open),
    }
}

/// The hub's URL and TLS files. HTTPS needs the CA bundle and the client certificate and
/// key (mutual TLS); plain HTTP only with `allow_plain_http` (tests, a hub on the same box).
fn hub_endpoint(raw: &raw::RawSync) -> Result<Option<HubEndpoint>, String> {
    let url = raw.hub_url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(None);
    }
    let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value));
    let endpoint = HubEndpoint {
        url: url.to_owned(),
        ca_file: path(&raw.ca_file),
        client_cert: path(&raw.client_cert),
        client_key: path(&raw.client_key),
    };
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        let missing: Vec<_> = [
            ("sync.ca_file", endpoint.ca_file.is_none()),
            ("sync.client_cert", endpoint.client_cert.is_none()),
            ("sync.client_key", endpoint.client_key.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, missing)| missing.then_some(key))
        .collect();
        if !missing.is_empty() {
            return Err(format!("an https hub needs {} (mutual TLS)", missing.join(", ")));
        }
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !raw.allow_plain_http {
            return Err(format!(
                "{url:?} is plain HTTP: events would cross the network unencrypted; use https:// or set \
                 sync.allow_plain_http = true"
            ));
        }
        rest
    } else {
        return Err(format!("{url:?} must start with https:// (or http:// with sync.allow_plain_http)"));
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(format!("{url:?} is not a base URL like \"https://hub.example:8443\""));
    }
    Ok(Some(endpoint))
}

fn operator_token(value: &str) -> Result<Option<String>, String> {
    match value.trim() {
        "" => Ok(None),
        t if t.len() < 16 => Err("must be at least 16 characters (or empty to disable operator actions)".into()),
        t if !t.bytes().all(|b| b.is_ascii_graphic()) => Err("must be printable ASCII without spaces".into()),
        t => Ok(Some(t.to_owned())),
    }
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Site identifiers go into keys, file names and URLs: keep them to a safe alphabet.
fn identifier(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(value.to_owned()) } else { Err(format!("{value:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")) }
}

fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    if value.trim().is_empty() { Err("must not be empty".into()) } else { Ok(PathBuf::from(value)) }
}

fn in_range(value: usize, min: usize, max: usize) -> Result<usize, String> {
    if (min..=max).contains(&value) { Ok(value) } else { Err(format!("{value} is out of range ({min}..={max})")) }
}

fn socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("{value:?} is not an address:port (e.g. \"127.0.0.1:2575\", \"[::]:2575\")"))
}

fn message_size(value: &str) -> Result<usize, String> {
    let bytes = units::size(value)?;
    if !(1024..=(1 << 30)).contains(&bytes) {
        return Err(format!("{value:?} must be between 1KiB and 1GiB"));
    }
    Ok(bytes as usize)
}

/// AE titles: 1-16 characters of the DICOM default repertoire, no backslash or control
/// characters; leading/trailing spaces are not significant (PS3.5 AE).
fn ae_title(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    let ok =
        !trimmed.is_empty() && trimmed.len() <= 16 && trimmed.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(format!("{value:?} is not an AE title (1-16 printable ASCII characters, no backslash)"))
    }
}

/// `AE` or `AE@192.0.2.7` or `AE@192.0.2.0/24`.
fn calling_ae(value: &str) -> Result<CallingAe, String> {
    let (ae, from) = match value.split_once('@') {
        Some((ae, addr)) => (ae, Some(addr)),
        None => (value, None),
    };
    let ae_title = ae_title(ae)?;
    let from = match from {
        None => None,
        Some(addr) => Some(
            addr.parse::<ipnet::IpNet>()
                .or_else(|_| addr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{value:?}: {addr:?} is not an address or network (e.g. 192.0.2.7, 192.0.2.0/24)")
                })?,
        ),
    };
    Ok(CallingAe { ae_title, from })
}

fn pdu_length(value: &str) -> Result<u32, String> {
    let bytes = units::size(value)?;
    if !(4096..=(16 << 20)).contains(&bytes) {
        return Err(format!("{value:?} must be between 4KiB and 16MiB"));
    }
    Ok(bytes as u32)
}

fn cache_size(value: &str) -> Result<usize, String> {
    let bytes = units::size(value)?;
    if !((1 << 20)..=(64 << 30)).contains(&bytes) {
        return Err(format!("{value:?} must be between 1MiB and 64GiB"));
    }
    Ok(bytes as usize)
}

fn field_paths(values: &[String]) -> Result<Vec<FieldPath>, String> {
    if values.is_empty() {
        return Err("needs at least one location, e.g. [\"OBR-18\"]".into());
    }
    values.iter().map(|v| v.parse::<FieldPath>().map_err(|e| format!("{v:?}: {e}"))).collect()
}

fn charset(value: &str) -> Result<Charset, String> {
    value.parse::<Charset>().map_err(|_| {
        format!("{value:?} is not a supported HL7 charset (MSH-18 names such as \"8859/1\", \"UNICODE UTF-8\")")
    })
}

/// A tracing `EnvFilter` of levels per target. Span and field filters (`[span{field=value}]`)
/// are refused: tracing-subscriber compiles a field value into a regular expression, and
/// building one took minutes for a 100-character value (found by the `config_toml` fuzz
/// target), which would hang `check-config` and start-up. `RUST_LOG` still takes them.
fn log_level(value: &str) -> Result<String, String> {
    if value.contains('[') {
        return Err(format!(
            "{value:?}: span and field filters ([...]) are not accepted here; set levels per target, \
             e.g. \"info,zenedge::sync=debug\" (RUST_LOG takes the full syntax)"
        ));
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| format!("{value:?} is not a log filter ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n";

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml(text) {
            Err(ConfigError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// Found by the `config_toml` fuzz target
    /// (fuzz/regressions/config_toml/log-level-field-regex): checking this `log_level` took
    /// minutes, compiling a field filter's value into a regular expression.
    #[test]
    fn a_log_level_with_span_or_field_filters_is_refused_without_compiling_it() {
        let text = include_str!("../../fuzz/regressions/config_toml/log-level-field-regex");
        let problems = problems(text);
        let log_level = problems.iter().find(|p| p.key == "daemon.log_level").expect("a log_level problem");
        assert!(log_level.reason.contains("span and field filters ([...]) are not accepted"), "{log_level:?}");
        let config = Config::from_toml(&format!("{MINIMAL}[daemon]\nlog_level = \"info,zenedge::sync=debug\"\n"));
        assert_eq!(config.unwrap().daemon.log_level, "info,zenedge::sync=debug");
    }

    #[test]
    fn retention_takes_days_and_refuses_a_zero_age() {
        let config =
            Config::from_toml(&format!("{MINIMAL}[retention]\ndicom_max_age = \"90d\"\ninterval = \"10m\"\n")).unwrap();
        assert_eq!(config.retention.dicom_max_age, Some(Duration::from_secs(90 * 24 * 3600)));
        assert_eq!(config.retention.dicom_max_age_text, "90d");
        assert_eq!(config.retention.interval, Duration::from_secs(600));
        let found = problems(&format!("{MINIMAL}[retention]\ndicom_max_age = \"0s\"\ninterval = \"soon\"\n"));
        let keys: Vec<_> = found.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["retention.dicom_max_age", "retention.interval"]);
    }

    #[test]
    fn example_config_parses_with_its_documented_defaults() {
        let text = include_str!("../../config.example.toml");
        let config = Config::from_toml(text).expect("config.example.toml must be valid");
        let defaults = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(config.mllp.listen, defaults.mllp.listen);
        assert_eq!(config.mllp.max_message_bytes, 16 << 20);
        assert_eq!(config.mllp.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.mllp.frame_timeout, Duration::from_secs(120));
        assert_eq!(config.mllp.frame_timeout, defaults.mllp.frame_timeout);
        assert_eq!(config.store.state_dir, PathBuf::from("./data"));
        assert_eq!(config.store.disk_reserve, defaults.store.disk_reserve);
        assert_eq!(config.store.queue_depth, defaults.store.queue_depth);
        assert_eq!(config.store.max_batch, defaults.store.max_batch);
        assert_eq!(config.store.cache_size, defaults.store.cache_size);
        assert_eq!(config.mllp.accession_from, defaults.mllp.accession_from);
        assert_eq!(config.mllp.fallback_charset, defaults.mllp.fallback_charset);
        assert_eq!(config.mllp.max_connections, defaults.mllp.max_connections);
        assert_eq!(config.http.listen, defaults.http.listen);
        assert_eq!(config.dicom.listen, defaults.dicom.listen);
        assert_eq!(config.dicom.ae_title, defaults.dicom.ae_title);
        assert_eq!(config.dicom.accept_any_called_ae, defaults.dicom.accept_any_called_ae);
        assert_eq!(config.dicom.calling_ae_allow, defaults.dicom.calling_ae_allow);
        assert_eq!(config.dicom.accept_unknown_sop_classes, defaults.dicom.accept_unknown_sop_classes);
        assert_eq!(config.dicom.max_associations, defaults.dicom.max_associations);
        assert_eq!(config.dicom.max_pdu_length, defaults.dicom.max_pdu_length);
        assert_eq!(config.dicom.read_timeout, defaults.dicom.read_timeout);
        assert_eq!(config.dicom.pdu_timeout, Duration::from_secs(120));
        assert_eq!(config.dicom.pdu_timeout, defaults.dicom.pdu_timeout);
        assert_eq!(config.http.header_timeout, Duration::from_secs(30));
        assert_eq!(config.http.header_timeout, defaults.http.header_timeout);
        assert_eq!(config.dicom.write_timeout, defaults.dicom.write_timeout);
        assert_eq!(config.dicom.stable_after, Duration::from_secs(60));
        assert_eq!(config.matching.consolidation_window, Duration::from_secs(24 * 3600));
        assert_eq!(config.matching.consolidation_window_for("hospital-1"), config.matching.consolidation_window);
        assert_eq!(config.daemon.shutdown_grace, defaults.daemon.shutdown_grace);
        assert_eq!(config.daemon.log_level, defaults.daemon.log_level);
        assert_eq!(config.retention, defaults.retention);
        assert_eq!(config.retention.dicom_max_age, None, "retention is off by default");
        assert_eq!(config.retention.interval, Duration::from_secs(3600));
    }

    #[test]
    fn per_frame_pdu_and_header_deadlines_must_be_longer_than_zero() {
        let text = format!(
            "{MINIMAL}[mllp]\nframe_timeout = \"0s\"\n[dicom]\npdu_timeout = \"0ms\"\n[http]\nheader_timeout = \"soon\"\n"
        );
        let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["mllp.frame_timeout", "dicom.pdu_timeout", "http.header_timeout"]);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::from_toml(&format!("{MINIMAL}[mllp]\nlisten_port = 1\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("listen_port"), "{text}");
    }

    #[test]
    fn missing_site_identity_is_an_error() {
        let err = Config::from_toml("[mllp]\n").unwrap_err();
        assert!(err.to_string().contains("site"), "{err}");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let text = format!(
            "{MINIMAL}[mllp]\nidle_timeout = \"5 fortnights\"\nlisten = \"nowhere\"\naccession_from = [\"OBR\"]\n\
             [store]\ndisk_reserve = \"150%\"\n"
        );
        let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["store.disk_reserve", "mllp.listen", "mllp.idle_timeout", "mllp.accession_from"]);
    }

    #[test]
    fn calling_ae_entries_take_an_optional_address_or_network() {
        let text =
            format!("{MINIMAL}[dicom]\ncalling_ae_allow = [\"CT01\", \"MR02@192.0.2.7\", \"US03@192.0.2.0/24\"]\n");
        let allow = Config::from_toml(&text).unwrap().dicom.calling_ae_allow;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(allow[0].matches("CT01", ip("198.51.100.1")));
        assert!(allow[1].matches("MR02", ip("192.0.2.7")) && !allow[1].matches("MR02", ip("192.0.2.8")));
        assert!(allow[2].matches("US03", ip("192.0.2.200")) && !allow[2].matches("CT01", ip("192.0.2.200")));
        let bad = format!(
            "{MINIMAL}[dicom]\ncalling_ae_allow = [\"X@nowhere\"]\nae_title = \"THIS TITLE IS WAY TOO LONG\"\n"
        );
        let keys: Vec<String> = problems(&bad).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["dicom.ae_title", "dicom.calling_ae_allow"]);
    }

    #[test]
    fn site_identifiers_are_restricted_to_a_safe_alphabet() {
        let text = "[site]\ntenant_id = \"t/1\"\nhospital_id = \"\"\nedge_id = \"e\"\n";
        let keys: Vec<String> = problems(text).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["site.tenant_id", "site.hospital_id"]);
    }
}
