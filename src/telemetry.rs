//! Tracing set-up and the Prometheus metrics the daemon exposes on `/metrics`.
//!
//! Metrics are `prometheus-client` types (cheap atomics, cloned handles share state). Label
//! values that come from the wire (the HL7 message type) are bounded: after
//! [`MAX_MESSAGE_TYPES`] distinct values, further ones are counted as `other`, so a sender
//! cannot grow the registry without bound. Refused DICOM presentation contexts are labelled
//! by the SOP class's keyword from the standard dictionary, or `unknown`: never by the UID
//! as sent.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Distinct HL7 message types tracked with their own label value.
pub const MAX_MESSAGE_TYPES: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub message_type: String,
    pub ack: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// A refused presentation context: why, and the SOP class by its dictionary keyword
/// (`unknown` for any UID the dictionary does not know, so the wire cannot add values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContextLabels {
    pub reason: String,
    pub sop_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
    pub status: String,
}

/// A forwarding destination alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwardLabels {
    pub destination: String,
}

/// A certificate the daemon presents, by the config key that names its file (`tls.cert`,
/// `sync.client_cert`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    pub certificate: String,
}

/// Declares every metric once: its field (with its doc), type, initial value, and the name and
/// help it is registered under (with the `zenedge_` prefix).
macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $field:ident: $ty:ty = $init:expr, $name:literal, $help:literal;)*) => {
        /// Every metric of the daemon, registered once.
        #[derive(Debug)]
        pub struct Metrics {
            registry: Registry,
            $($(#[doc = $doc])* pub $field: $ty,)*
            seen_message_types: Mutex<HashSet<String>>,
            /// Each listener's recent answers, for the status page (not exported).
            pub activity: crate::activity::Activity,
        }

        impl Metrics {
            pub fn new() -> Metrics {
                let mut registry = Registry::with_prefix("zenedge");
                $(
                    let $field: $ty = $init;
                    registry.register($name, $help, $field.clone());
                )*
                Metrics {
                    registry,
                    $($field,)*
                    seen_message_types: Mutex::new(HashSet::new()),
                    activity: crate::activity::Activity::new(),
                }
            }
        }
    };
}

metrics! {
    /// HL7 messages answered, by MSH-9 and the acknowledgement code sent.
    hl7_messages: Family<MessageLabels, Counter> = Default::default(),
        "hl7_messages", "HL7 messages answered, by type and ACK code";
    /// Re-sent messages answered with their stored ACK, nothing appended.
    hl7_duplicates: Counter = Default::default(),
        "hl7_duplicates", "Re-sent HL7 messages answered with their stored ACK";
    /// Messages stored whose control id was already used by the same sender for other content.
    hl7_control_id_conflicts: Counter = Default::default(),
        "hl7_control_id_conflicts",
        "HL7 messages stored whose control id the sender had used for other content";
    /// Messages whose summary was decoded with the fallback charset.
    hl7_charset_fallbacks: Counter = Default::default(),
        "hl7_charset_fallbacks", "HL7 messages decoded with the fallback charset";
    /// MLLP input that did not make a message: oversized, truncated, unparseable…
    mllp_frames_rejected: Family<ReasonLabels, Counter> = Default::default(),
        "mllp_frames_rejected", "MLLP input that did not make a message";
    /// Bytes skipped outside frames (CR/LF between frames is normal; much more is not).
    mllp_bytes_skipped: Counter = Default::default(),
        "mllp_bytes_skipped", "Bytes skipped outside MLLP frames";
    mllp_connections_open: Gauge = Default::default(),
        "mllp_connections_open", "Open MLLP connections";
    mllp_connections_total: Counter = Default::default(),
        "mllp_connections", "MLLP connections accepted";
    /// Requests per group commit.
    log_commit_batch_size: Histogram =
        Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
        "log_commit_batch_size", "Requests per group commit";
    /// Duration of one write transaction, apply to durable commit.
    log_commit_seconds: Histogram =
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_1, 2.0, 14)),
        "log_commit_seconds", "Write transaction time, apply to durable commit";
    /// Appends refused, by reason (disk_reserve, unavailable…).
    log_appends_refused: Family<ReasonLabels, Counter> = Default::default(),
        "log_appends_refused", "Appends refused by the log, by reason";
    log_last_seq: Gauge = Default::default(),
        "log_last_seq", "Last committed sequence number";
    log_size_bytes: Gauge = Default::default(),
        "log_size_bytes", "Size of the database file";
    /// The id of the compression dictionary new event values use (0: none yet).
    log_value_dictionary: Gauge = Default::default(),
        "log_value_dictionary",
        "Id of the compression dictionary new event values use (0: none yet)";
    /// Compression dictionaries adopted since start (trained on the site's events).
    log_value_dictionaries_adopted: Counter = Default::default(),
        "log_value_dictionaries_adopted",
        "Compression dictionaries trained on the site's events and adopted since start";
    /// Associations by outcome: accepted, rejected_<reason>, protocol.
    dicom_associations: Family<ReasonLabels, Counter> = Default::default(),
        "dicom_associations", "DICOM associations by outcome";
    dicom_associations_open: Gauge = Default::default(),
        "dicom_associations_open", "Open DICOM associations";
    /// Presentation contexts refused, by reason and SOP class keyword.
    dicom_contexts_refused: Family<ContextLabels, Counter> = Default::default(),
        "dicom_contexts_refused", "DICOM presentation contexts refused, by reason and SOP class";
    /// C-STORE outcomes: success, duplicate, out_of_resources, sop_class_mismatch, cannot_understand.
    dicom_instances: Family<StatusLabels, Counter> = Default::default(),
        "dicom_instances", "C-STORE requests by outcome";
    /// Instance files retention deleted (each recorded by an `InstanceFileDeleted`).
    retention_deleted: Counter = Default::default(),
        "retention_deleted", "Instance files deleted by retention";
    /// Instances a forwarding destination answered, by destination and `stored`/`refused`.
    forward_instances: Family<DestinationLabels, Counter> = Default::default(),
        "forward_instances",
        "Instances a forwarding destination answered, by destination and status";
    /// Failed forwarding rounds (connection, association, protocol), by destination.
    forward_failures: Family<DestinationLabels, Counter> = Default::default(),
        "forward_failures", "Failed forwarding rounds, by destination";
    /// Forwarding dead letters, by destination and status (`parked`, `retry`, `skipped`,
    /// `delivered`).
    forward_dead_letters: Family<DestinationLabels, Gauge> = Default::default(),
        "forward_dead_letters",
        "Instances a forwarding destination refused, by destination and dead-letter status";
    /// Instances stored after a destination's cursor, by destination.
    forward_lag_instances: Family<ForwardLabels, Gauge> = Default::default(),
        "forward_lag_instances", "Instances stored after a forwarding destination's cursor";
    /// Bytes of those instances' files.
    forward_lag_bytes: Family<ForwardLabels, Gauge> = Default::default(),
        "forward_lag_bytes",
        "Bytes of the instances stored after a forwarding destination's cursor";
    /// Age of the oldest event after the destination's cursor (0 when none).
    forward_lag_seconds: Family<ForwardLabels, Gauge<f64, AtomicU64>> = Default::default(),
        "forward_lag_seconds", "Age of the oldest event after a forwarding destination's cursor";
    dicom_bytes_received: Counter = Default::default(),
        "dicom_received_bytes", "DICOM data set bytes received";
    /// Worklist C-FIND queries by outcome: success, cancel, failed, refused.
    worklist_queries: Family<StatusLabels, Counter> = Default::default(),
        "worklist_queries", "Worklist C-FIND queries by outcome";
    /// Worklist items answered (one Pending response each).
    worklist_items: Counter = Default::default(),
        "worklist_items", "Worklist items answered";
    /// Worklist C-FIND: identifier complete to final status sent.
    worklist_query_seconds: Histogram =
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 14)),
        "worklist_query_seconds", "Worklist C-FIND: identifier received to final status sent";
    /// C-STORE from the end of the data set to the commit of its event.
    dicom_store_seconds: Histogram =
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.000_25, 2.0, 14)),
        "dicom_store_seconds", "C-STORE: end of data set to committed event";
    /// Flushes of instance files asked of the disk: one `syncfs` per batch (shared flushes),
    /// or one `fdatasync` and one directory `fsync` per instance (`dicom.flush = "each"`).
    /// Each batch adds one commit of the log besides ([`Metrics::dicom_flush_batch`]).
    dicom_flushes: Counter = Default::default(),
        "dicom_flushes", "Flushes of instance files asked of the disk";
    /// Instances per flush batch: made durable by one flush and recorded by one commit.
    dicom_flush_batch: Histogram =
        Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        "dicom_flush_batch_instances",
        "Instances made durable by one flush and recorded by one commit";
    /// Studies with instances not yet covered by a StudyCompleted.
    dicom_studies_pending: Gauge = Default::default(),
        "dicom_studies_pending", "Studies waiting to be completed";
    /// `StudyCompleted` events appended.
    dicom_studies_completed: Counter = Default::default(),
        "dicom_studies_completed", "StudyCompleted events appended";
    /// Events in the log the hub does not have yet.
    sync_lag_events: Gauge = Default::default(),
        "sync_lag_events", "Events the hub does not have yet";
    /// Age of the oldest event the hub does not have yet (0 when none).
    sync_lag_seconds: Gauge<f64, AtomicU64> = Default::default(),
        "sync_lag_seconds", "Age of the oldest event the hub does not have yet";
    /// Every event up to this sequence number is stored on the hub.
    sync_cursor: Gauge = Default::default(),
        "sync_cursor", "Last sequence number stored on the hub";
    /// Batches the hub stored.
    sync_batches: Counter = Default::default(),
        "sync_batches", "Batches stored by the hub";
    /// Events in those batches.
    sync_events: Counter = Default::default(),
        "sync_events", "Events in batches stored by the hub";
    /// Failed exchanges with the hub, by kind (connect, timeout, tls, http_5xx, http_4xx,
    /// protocol, hub_ahead).
    sync_failures: Family<KindLabels, Counter> = Default::default(),
        "sync_failures", "Failed exchanges with the hub, by kind";
    /// 0 closed, 1 half-open, 2 open.
    sync_breaker_state: Gauge = Default::default(),
        "sync_breaker_state", "Hub circuit breaker: 0 closed, 1 half-open, 2 open";
    /// Dead letters parked or waiting for redelivery.
    sync_dead_letters: Gauge = Default::default(),
        "sync_dead_letters", "Dead letters parked or waiting for redelivery";
    /// One batch: request sent to answer read.
    sync_batch_seconds: Histogram =
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 16)),
        "sync_batch_seconds", "One batch, request to answer";
    /// Security alerts by kind (see `crate::security::AlertKind`).
    security_alerts: Family<KindLabels, Counter> = Default::default(),
        "security_alerts", "Security alerts, by kind";
    /// HTTP requests refused before a handler ran, by reason (`no_token`, `bad_token`,
    /// `scope`, `rate_limited`).
    http_refused: Family<ReasonLabels, Counter> = Default::default(),
        "http_refused", "HTTP requests refused by access control, by reason";
    /// Audit records committed to the trail.
    audit_records: Counter = Default::default(),
        "audit_records", "Audit records committed to the trail";
    /// Audit records of security alerts dropped because the queue to the writer was full.
    audit_dropped: Counter = Default::default(),
        "audit_dropped",
        "Audit records of security alerts dropped: the queue to the log writer was full";
    /// Audit records handed to the syslog collector.
    audit_syslog_sent: Counter = Default::default(),
        "audit_syslog_sent", "Audit records handed to the syslog collector";
    /// Audit records not yet forwarded to syslog.
    audit_syslog_backlog: Gauge = Default::default(),
        "audit_syslog_backlog", "Audit records not yet forwarded to the syslog collector";
    /// Audit records the hub stored (pages it answered `200`).
    sync_audit_records: Counter = Default::default(),
        "sync_audit_records", "Audit records in pages the hub stored";
    /// Free space of the state directory's file system (for unprivileged users), as of the
    /// last scrape.
    disk_free_bytes: Gauge = Default::default(),
        "disk_free_bytes", "Free space of the state directory's file system";
    /// `store.disk_reserve`: below it, new data is refused.
    disk_reserve_bytes: Gauge = Default::default(),
        "disk_reserve_bytes", "Free space below which new data is refused (store.disk_reserve)";
    /// End of validity (Unix seconds) of each certificate the daemon presents: the `[tls]`
    /// identity in use and the sync's client certificate.
    tls_certificate_expiry: Family<CertificateLabels, Gauge> = Default::default(),
        "tls_certificate_expiry_timestamp_seconds",
        "End of validity of a certificate the daemon presents (Unix time), by config key";
    /// 1 while scheduled backups are on (`backup.dir` set).
    backup_enabled: Gauge = Default::default(),
        "backup_enabled", "1 when scheduled backups are on (backup.dir set)";
    /// Start of the newest complete scheduled backup (Unix time; 0: none).
    backup_last_success: Gauge = Default::default(),
        "backup_last_success_timestamp_seconds",
        "Start time of the newest complete scheduled backup (Unix time; 0: none)";
    /// Start of the last failed scheduled backup (Unix time; 0: none since start).
    backup_last_failure: Gauge = Default::default(),
        "backup_last_failure_timestamp_seconds",
        "Start time of the last failed scheduled backup (Unix time; 0: none since start)";
    /// Scheduled backups that failed.
    backup_failures: Counter = Default::default(),
        "backup_failures", "Scheduled backups that failed";
    /// How long the last successful backup took.
    backup_duration: Gauge<f64, AtomicU64> = Default::default(),
        "backup_last_duration_seconds", "How long the last successful scheduled backup took";
    /// Bytes the last successful backup wrote (database and instance files).
    backup_size: Gauge = Default::default(),
        "backup_last_size_bytes", "Bytes the last successful scheduled backup wrote";
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Counts an answered HL7 message.
    pub fn hl7_answered(&self, message_type: &str, ack: &str) {
        let message_type = self.bounded_message_type(message_type);
        self.hl7_messages.get_or_create(&MessageLabels { message_type, ack: ack.to_owned() }).inc();
    }

    pub fn frame_rejected(&self, reason: &str) {
        self.mllp_frames_rejected.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    pub fn dicom_association(&self, outcome: &str) {
        self.dicom_associations.get_or_create(&ReasonLabels { reason: outcome.to_owned() }).inc();
    }

    /// Counts a refused presentation context; `sop_class` is a dictionary keyword or
    /// `unknown`, never a string from the wire.
    pub fn dicom_context_refused(&self, reason: &str, sop_class: &'static str) {
        let labels = ContextLabels { reason: reason.to_owned(), sop_class: sop_class.to_owned() };
        self.dicom_contexts_refused.get_or_create(&labels).inc();
    }

    /// Counts `n` instances `destination` answered with `status`.
    pub fn forward_instance(&self, destination: &str, status: &str, n: u64) {
        let labels = DestinationLabels { destination: destination.to_owned(), status: status.to_owned() };
        self.forward_instances.get_or_create(&labels).inc_by(n);
    }

    /// Sets `destination`'s dead letters with `status` to `n`.
    pub fn forward_dead_letters(&self, destination: &str, status: &str, n: u64) {
        let labels = DestinationLabels { destination: destination.to_owned(), status: status.to_owned() };
        self.forward_dead_letters.get_or_create(&labels).set(n as i64);
    }

    /// Sets how far `destination` is behind: instances, their bytes, seconds.
    pub fn forward_lag(&self, destination: &str, instances: u64, bytes: u64, seconds: f64) {
        let labels = ForwardLabels { destination: destination.to_owned() };
        self.forward_lag_instances.get_or_create(&labels).set(instances as i64);
        self.forward_lag_bytes.get_or_create(&labels).set(bytes as i64);
        self.forward_lag_seconds.get_or_create(&labels).set(seconds);
    }

    /// Counts a failed forwarding round of `destination`.
    pub fn forward_failure(&self, destination: &str) {
        let labels = DestinationLabels { destination: destination.to_owned(), status: "failed".to_owned() };
        self.forward_failures.get_or_create(&labels).inc();
    }

    pub fn worklist_query(&self, status: &str) {
        self.worklist_queries.get_or_create(&StatusLabels { status: status.to_owned() }).inc();
    }

    pub fn dicom_instance(&self, status: &str) {
        self.dicom_instances.get_or_create(&StatusLabels { status: status.to_owned() }).inc();
    }

    /// Counts a security alert; `kind` is one of a fixed set of labels.
    pub fn security_alert(&self, kind: &'static str) {
        self.security_alerts.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// Counts an HTTP request refused by access control; `reason` is one of a fixed set.
    pub fn http_refused(&self, reason: &'static str) {
        self.http_refused.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    /// Records when the certificate named by `certificate` (its config key) ends.
    pub fn certificate_expiry(&self, certificate: &str, not_after: jiff::Timestamp) {
        let labels = CertificateLabels { certificate: certificate.to_owned() };
        self.tls_certificate_expiry.get_or_create(&labels).set(not_after.as_second());
    }

    pub fn sync_failure(&self, kind: &str) {
        self.sync_failures.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// HL7 messages answered so far, by acknowledgement code (summed over message types).
    pub fn hl7_by_ack(&self) -> BTreeMap<String, u64> {
        let mut types: Vec<String> =
            self.seen_message_types.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        types.push("other".into());
        let mut out = BTreeMap::new();
        for ack in ["AA", "AE", "AR", "CA", "CE", "CR"] {
            let total: u64 = types
                .iter()
                .filter_map(|t| {
                    let labels = MessageLabels { message_type: t.clone(), ack: ack.to_owned() };
                    self.hl7_messages.get(&labels).map(|c| c.get())
                })
                .sum();
            if total > 0 {
                out.insert(ack.to_owned(), total);
            }
        }
        out
    }

    /// Instances recorded by C-STORE (answered success, identical re-sends not counted).
    pub fn dicom_instances_stored(&self) -> u64 {
        let count = |s: &str| self.dicom_instances.get(&StatusLabels { status: s.to_owned() }).map_or(0, |c| c.get());
        // A re-sent identical instance is counted under both `duplicate` and `success`.
        count("success").saturating_sub(count("duplicate"))
    }

    pub fn append_refused(&self, reason: &str) {
        self.log_appends_refused.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }

    fn bounded_message_type(&self, message_type: &str) -> String {
        let clean = !message_type.is_empty()
            && message_type.len() <= 16
            && message_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'^' || b == b'_');
        if !clean {
            return "other".into();
        }
        let mut seen = self.seen_message_types.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(message_type) || seen.len() < MAX_MESSAGE_TYPES {
            seen.insert(message_type.to_owned());
            message_type.to_owned()
        } else {
            "other".into()
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Installs the tracing subscriber: `RUST_LOG` if set, else `default_filter`.
pub fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
#[path = "telemetry_tests.rs"]
mod tests;
