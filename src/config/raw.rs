//! The TOML file as written: a serde mirror with every default spelled out.
//!
//! Durations and sizes stay strings here so that [`super::validate`] can report every bad
//! value with its key at once, instead of serde stopping at the first one. Unknown keys are
//! refused by `deny_unknown_fields` on every table: a misspelt key must never be silently
//! ignored on a box that stores clinical data. [`super::shape`] deserializes each key alone
//! against its section, and serializes a section's defaults to learn its keys and their
//! types.

use serde::{Deserialize, Serialize};

/// The whole file, assembled section by section by [`super::shape::read`].
#[derive(Debug)]
pub(super) struct RawConfig {
    pub site: RawSite,
    pub store: RawStore,
    pub mllp: RawMllp,
    pub dicom: RawDicom,
    pub http: RawHttp,
    pub tls: RawTls,
    pub matching: RawMatching,
    pub sync: RawSync,
    pub retention: RawRetention,
    pub forward: super::forward::RawForward,
    pub audit: RawAudit,
    pub backup: super::backup::RawBackup,
    pub daemon: RawDaemon,
}

/// The site identity has no default: an edge that guesses its hospital would file data
/// under the wrong one.
#[derive(Debug)]
pub(super) struct RawSite {
    pub tenant_id: String,
    pub hospital_id: String,
    pub edge_id: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub state_dir: String,
    pub disk_reserve: String,
    pub queue_depth: usize,
    pub max_batch: usize,
    pub cache_size: String,
    pub value_dictionary_after: u64,
    pub master_key_file: String,
    pub seal: bool,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            state_dir: "./data".into(),
            disk_reserve: "2GiB".into(),
            queue_depth: 4096,
            max_batch: 1024,
            cache_size: "32MiB".into(),
            value_dictionary_after: 2000,
            master_key_file: String::new(),
            seal: true,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMllp {
    pub listen: String,
    pub tls_listen: String,
    pub allow_from: Vec<String>,
    pub max_connections: usize,
    pub max_message_bytes: String,
    pub idle_timeout: String,
    pub frame_timeout: String,
    pub accession_from: Vec<String>,
    pub fallback_charset: String,
    pub senders: Vec<RawSender>,
}

impl Default for RawMllp {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:2575".into(),
            tls_listen: String::new(),
            allow_from: Vec::new(),
            max_connections: 256,
            max_message_bytes: "16MiB".into(),
            idle_timeout: "5m".into(),
            frame_timeout: "2m".into(),
            accession_from: ["IPC-1", "OBR-18", "ORC-3", "OBR-3"].map(String::from).to_vec(),
            fallback_charset: "8859/1".into(),
            senders: Vec::new(),
        }
    }
}

/// One `[[mllp.senders]]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSender {
    pub name: String,
    pub certificate: String,
    pub from: Vec<String>,
    pub sending_application: Vec<String>,
    pub sending_facility: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDicom {
    pub listen: String,
    pub tls_listen: String,
    pub ae_title: String,
    pub accept_any_called_ae: bool,
    /// Strings (`AE`, `AE@network`) and tables (`{ ae, from, certificate }`), checked one by
    /// one in [`super::trust`].
    pub calling_ae_allow: Vec<toml::Value>,
    pub accept_unknown_sop_classes: bool,
    pub max_associations: usize,
    pub max_pdu_length: String,
    pub read_timeout: String,
    pub pdu_timeout: String,
    pub write_timeout: String,
    pub stable_after: String,
    pub worklist: bool,
    pub worklist_filter_by_calling_ae: bool,
    pub worklist_show_completed: bool,
    pub worklist_max_results: usize,
    pub flush: String,
}

impl Default for RawDicom {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:11112".into(),
            tls_listen: String::new(),
            ae_title: "ZENEDGE".into(),
            accept_any_called_ae: false,
            calling_ae_allow: Vec::new(),
            accept_unknown_sop_classes: false,
            max_associations: 32,
            max_pdu_length: "128KiB".into(),
            read_timeout: "60s".into(),
            pdu_timeout: "2m".into(),
            write_timeout: "60s".into(),
            stable_after: "60s".into(),
            worklist: false,
            worklist_filter_by_calling_ae: false,
            worklist_show_completed: false,
            worklist_max_results: 10_000,
            flush: "shared".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHttp {
    pub listen: String,
    pub tls: bool,
    pub header_timeout: String,
    pub max_header_bytes: String,
    pub operator_token: String,
    pub metrics_open: bool,
    pub requests_per_second: u32,
    pub auth_failures_per_minute: u32,
    pub clients: Vec<RawClient>,
}

/// One `[[http.clients]]` table.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawClient {
    pub name: String,
    pub token_sha256: String,
    pub scopes: Vec<String>,
    pub requests_per_second: u32,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tls: false,
            header_timeout: "30s".into(),
            max_header_bytes: "64KiB".into(),
            operator_token: String::new(),
            metrics_open: false,
            requests_per_second: 100,
            auth_failures_per_minute: 10,
            clients: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    pub cert: String,
    pub key: String,
    pub client_ca: String,
    pub crl: String,
    pub handshake_timeout: String,
}

impl Default for RawTls {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            client_ca: String::new(),
            crl: String::new(),
            handshake_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSync {
    pub hub_url: String,
    pub ca_file: String,
    pub client_cert: String,
    pub client_key: String,
    pub allow_plain_http: bool,
    pub batch_max_events: usize,
    pub batch_max_bytes: String,
    pub linger: String,
    pub connect_timeout: String,
    pub timeout: String,
    pub retry_base: String,
    pub retry_cap: String,
    pub breaker_failures: u32,
    pub breaker_open: String,
    pub position_check_interval: String,
}

impl Default for RawSync {
    fn default() -> Self {
        Self {
            hub_url: String::new(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            allow_plain_http: false,
            batch_max_events: 5000,
            batch_max_bytes: "4MiB".into(),
            linger: "20ms".into(),
            connect_timeout: "10s".into(),
            timeout: "30s".into(),
            retry_base: "500ms".into(),
            retry_cap: "60s".into(),
            breaker_failures: 5,
            breaker_open: "30s".into(),
            position_check_interval: "60s".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMatching {
    pub consolidation_window: String,
    /// Per-hospital overrides: hospital id → window.
    pub hospital_windows: std::collections::BTreeMap<String, String>,
}

impl Default for RawMatching {
    fn default() -> Self {
        Self { consolidation_window: "24h".into(), hospital_windows: Default::default() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDaemon {
    pub shutdown_grace: String,
    pub log_level: String,
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self { shutdown_grace: "1500ms".into(), log_level: "info".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRetention {
    /// Empty: retention is off.
    pub dicom_max_age: String,
    pub interval: String,
}

impl Default for RawRetention {
    fn default() -> Self {
        Self { dicom_max_age: String::new(), interval: "1h".into() }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    /// Empty: the trail is not forwarded.
    pub syslog: String,
    pub retention: String,
    pub journal: bool,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self { syslog: String::new(), retention: "90d".into(), journal: true }
    }
}
