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

/// Every metric of the daemon, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HL7 messages answered, by MSH-9 and the acknowledgement code sent.
    pub hl7_messages: Family<MessageLabels, Counter>,
    /// Re-sent messages answered with their stored ACK, nothing appended.
    pub hl7_duplicates: Counter,
    /// Messages stored whose control id was already used by the same sender for other content.
    pub hl7_control_id_conflicts: Counter,
    /// Messages whose summary was decoded with the fallback charset.
    pub hl7_charset_fallbacks: Counter,
    /// MLLP input that did not make a message: oversized, truncated, unparseable…
    pub mllp_frames_rejected: Family<ReasonLabels, Counter>,
    /// Bytes skipped outside frames (CR/LF between frames is normal; much more is not).
    pub mllp_bytes_skipped: Counter,
    pub mllp_connections_open: Gauge,
    pub mllp_connections_total: Counter,
    /// Requests per group commit.
    pub log_commit_batch_size: Histogram,
    /// Duration of one write transaction, apply to durable commit.
    pub log_commit_seconds: Histogram,
    /// Appends refused, by reason (disk_reserve, unavailable…).
    pub log_appends_refused: Family<ReasonLabels, Counter>,
    pub log_last_seq: Gauge,
    pub log_size_bytes: Gauge,
    /// The id of the compression dictionary new event values use (0: none yet).
    pub log_value_dictionary: Gauge,
    /// Compression dictionaries adopted since start (trained on the site's events).
    pub log_value_dictionaries_adopted: Counter,
    /// Associations by outcome: accepted, rejected_<reason>, protocol.
    pub dicom_associations: Family<ReasonLabels, Counter>,
    pub dicom_associations_open: Gauge,
    /// Presentation contexts refused, by reason and SOP class keyword.
    pub dicom_contexts_refused: Family<ContextLabels, Counter>,
    /// C-STORE outcomes: success, duplicate, out_of_resources, sop_class_mismatch, cannot_understand.
    pub dicom_instances: Family<StatusLabels, Counter>,
    /// Instance files retention deleted (each recorded by an `InstanceFileDeleted`).
    pub retention_deleted: Counter,
    /// Instances a forwarding destination answered, by destination and `stored`/`refused`.
    pub forward_instances: Family<DestinationLabels, Counter>,
    /// Failed forwarding rounds (connection, association, protocol), by destination.
    pub forward_failures: Family<DestinationLabels, Counter>,
    pub dicom_bytes_received: Counter,
    /// Worklist C-FIND queries by outcome: success, cancel, failed, refused.
    pub worklist_queries: Family<StatusLabels, Counter>,
    /// Worklist items answered (one Pending response each).
    pub worklist_items: Counter,
    /// Worklist C-FIND: identifier complete to final status sent.
    pub worklist_query_seconds: Histogram,
    /// C-STORE from the end of the data set to the commit of its event.
    pub dicom_store_seconds: Histogram,
    /// Flushes of instance files asked of the disk: one `syncfs` per batch (shared flushes),
    /// or one `fdatasync` and one directory `fsync` per instance (`dicom.flush = "each"`).
    /// Each batch adds one commit of the log besides ([`Metrics::dicom_flush_batch`]).
    pub dicom_flushes: Counter,
    /// Instances per flush batch: made durable by one flush and recorded by one commit.
    pub dicom_flush_batch: Histogram,
    /// Studies with instances not yet covered by a StudyCompleted.
    pub dicom_studies_pending: Gauge,
    /// `StudyCompleted` events appended.
    pub dicom_studies_completed: Counter,
    /// Events in the log the hub does not have yet.
    pub sync_lag_events: Gauge,
    /// Age of the oldest event the hub does not have yet (0 when none).
    pub sync_lag_seconds: Gauge<f64, AtomicU64>,
    /// Every event up to this sequence number is stored on the hub.
    pub sync_cursor: Gauge,
    /// Batches the hub stored.
    pub sync_batches: Counter,
    /// Events in those batches.
    pub sync_events: Counter,
    /// Failed exchanges with the hub, by kind (connect, timeout, tls, http_5xx, http_4xx,
    /// protocol, hub_ahead).
    pub sync_failures: Family<KindLabels, Counter>,
    /// 0 closed, 1 half-open, 2 open.
    pub sync_breaker_state: Gauge,
    /// Dead letters parked or waiting for redelivery.
    pub sync_dead_letters: Gauge,
    /// One batch: request sent to answer read.
    pub sync_batch_seconds: Histogram,
    /// Security alerts by kind (see `crate::security::AlertKind`).
    pub security_alerts: Family<KindLabels, Counter>,
    /// HTTP requests refused before a handler ran, by reason (`no_token`, `bad_token`,
    /// `scope`, `rate_limited`).
    pub http_refused: Family<ReasonLabels, Counter>,
    /// Audit records committed to the trail.
    pub audit_records: Counter,
    /// Audit records of security alerts dropped because the queue to the writer was full.
    pub audit_dropped: Counter,
    /// Audit records handed to the syslog collector.
    pub audit_syslog_sent: Counter,
    /// Audit records not yet forwarded to syslog.
    pub audit_syslog_backlog: Gauge,
    /// Audit records the hub stored (pages it answered `200`).
    pub sync_audit_records: Counter,
    seen_message_types: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zenedge");
        let m = Metrics {
            hl7_messages: Family::default(),
            hl7_duplicates: Counter::default(),
            hl7_control_id_conflicts: Counter::default(),
            hl7_charset_fallbacks: Counter::default(),
            mllp_frames_rejected: Family::default(),
            mllp_bytes_skipped: Counter::default(),
            mllp_connections_open: Gauge::default(),
            mllp_connections_total: Counter::default(),
            log_commit_batch_size: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]),
            log_commit_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_1, 2.0, 14,
            )),
            log_appends_refused: Family::default(),
            log_last_seq: Gauge::default(),
            log_size_bytes: Gauge::default(),
            log_value_dictionary: Gauge::default(),
            log_value_dictionaries_adopted: Counter::default(),
            dicom_associations: Family::default(),
            dicom_associations_open: Gauge::default(),
            dicom_contexts_refused: Family::default(),
            dicom_instances: Family::default(),
            retention_deleted: Counter::default(),
            forward_instances: Family::default(),
            forward_failures: Family::default(),
            dicom_bytes_received: Counter::default(),
            worklist_queries: Family::default(),
            worklist_items: Counter::default(),
            worklist_query_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_25, 2.0, 14,
            )),
            dicom_store_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_25, 2.0, 14,
            )),
            dicom_flushes: Counter::default(),
            dicom_flush_batch: Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            dicom_studies_pending: Gauge::default(),
            dicom_studies_completed: Counter::default(),
            sync_lag_events: Gauge::default(),
            sync_lag_seconds: Gauge::default(),
            sync_cursor: Gauge::default(),
            sync_batches: Counter::default(),
            sync_events: Counter::default(),
            sync_failures: Family::default(),
            sync_breaker_state: Gauge::default(),
            sync_dead_letters: Gauge::default(),
            sync_batch_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.001, 2.0, 16,
            )),
            security_alerts: Family::default(),
            http_refused: Family::default(),
            audit_records: Counter::default(),
            audit_dropped: Counter::default(),
            audit_syslog_sent: Counter::default(),
            audit_syslog_backlog: Gauge::default(),
            sync_audit_records: Counter::default(),
            seen_message_types: Mutex::new(HashSet::new()),
            registry: Registry::default(),
        };
        registry.register("hl7_messages", "HL7 messages answered, by type and ACK code", m.hl7_messages.clone());
        registry.register(
            "hl7_duplicates",
            "Re-sent HL7 messages answered with their stored ACK",
            m.hl7_duplicates.clone(),
        );
        registry.register(
            "hl7_control_id_conflicts",
            "HL7 messages stored whose control id the sender had used for other content",
            m.hl7_control_id_conflicts.clone(),
        );
        registry.register(
            "hl7_charset_fallbacks",
            "HL7 messages decoded with the fallback charset",
            m.hl7_charset_fallbacks.clone(),
        );
        registry.register(
            "mllp_frames_rejected",
            "MLLP input that did not make a message",
            m.mllp_frames_rejected.clone(),
        );
        registry.register("mllp_bytes_skipped", "Bytes skipped outside MLLP frames", m.mllp_bytes_skipped.clone());
        registry.register("mllp_connections_open", "Open MLLP connections", m.mllp_connections_open.clone());
        registry.register("mllp_connections", "MLLP connections accepted", m.mllp_connections_total.clone());
        registry.register("log_commit_batch_size", "Requests per group commit", m.log_commit_batch_size.clone());
        registry.register(
            "log_commit_seconds",
            "Write transaction time, apply to durable commit",
            m.log_commit_seconds.clone(),
        );
        registry.register(
            "log_appends_refused",
            "Appends refused by the log, by reason",
            m.log_appends_refused.clone(),
        );
        registry.register("log_last_seq", "Last committed sequence number", m.log_last_seq.clone());
        registry.register("log_size_bytes", "Size of the database file", m.log_size_bytes.clone());
        registry.register(
            "log_value_dictionary",
            "Id of the compression dictionary new event values use (0: none yet)",
            m.log_value_dictionary.clone(),
        );
        registry.register(
            "log_value_dictionaries_adopted",
            "Compression dictionaries trained on the site's events and adopted since start",
            m.log_value_dictionaries_adopted.clone(),
        );
        registry.register("dicom_associations", "DICOM associations by outcome", m.dicom_associations.clone());
        registry.register("dicom_associations_open", "Open DICOM associations", m.dicom_associations_open.clone());
        registry.register(
            "dicom_contexts_refused",
            "DICOM presentation contexts refused, by reason and SOP class",
            m.dicom_contexts_refused.clone(),
        );
        registry.register("dicom_instances", "C-STORE requests by outcome", m.dicom_instances.clone());
        registry.register("retention_deleted", "Instance files deleted by retention", m.retention_deleted.clone());
        registry.register(
            "forward_instances",
            "Instances a forwarding destination answered, by destination and status",
            m.forward_instances.clone(),
        );
        registry.register("forward_failures", "Failed forwarding rounds, by destination", m.forward_failures.clone());
        registry.register("dicom_received_bytes", "DICOM data set bytes received", m.dicom_bytes_received.clone());
        registry.register("worklist_queries", "Worklist C-FIND queries by outcome", m.worklist_queries.clone());
        registry.register("worklist_items", "Worklist items answered", m.worklist_items.clone());
        registry.register(
            "worklist_query_seconds",
            "Worklist C-FIND: identifier received to final status sent",
            m.worklist_query_seconds.clone(),
        );
        registry.register(
            "dicom_store_seconds",
            "C-STORE: end of data set to committed event",
            m.dicom_store_seconds.clone(),
        );
        registry.register("dicom_flushes", "Flushes of instance files asked of the disk", m.dicom_flushes.clone());
        registry.register(
            "dicom_flush_batch_instances",
            "Instances made durable by one flush and recorded by one commit",
            m.dicom_flush_batch.clone(),
        );
        registry.register("dicom_studies_pending", "Studies waiting to be completed", m.dicom_studies_pending.clone());
        registry.register(
            "dicom_studies_completed",
            "StudyCompleted events appended",
            m.dicom_studies_completed.clone(),
        );
        registry.register("sync_lag_events", "Events the hub does not have yet", m.sync_lag_events.clone());
        registry.register(
            "sync_lag_seconds",
            "Age of the oldest event the hub does not have yet",
            m.sync_lag_seconds.clone(),
        );
        registry.register("sync_cursor", "Last sequence number stored on the hub", m.sync_cursor.clone());
        registry.register("sync_batches", "Batches stored by the hub", m.sync_batches.clone());
        registry.register("sync_events", "Events in batches stored by the hub", m.sync_events.clone());
        registry.register("sync_failures", "Failed exchanges with the hub, by kind", m.sync_failures.clone());
        registry.register(
            "sync_breaker_state",
            "Hub circuit breaker: 0 closed, 1 half-open, 2 open",
            m.sync_breaker_state.clone(),
        );
        registry.register(
            "sync_dead_letters",
            "Dead letters parked or waiting for redelivery",
            m.sync_dead_letters.clone(),
        );
        registry.register("sync_batch_seconds", "One batch, request to answer", m.sync_batch_seconds.clone());
        registry.register("security_alerts", "Security alerts, by kind", m.security_alerts.clone());
        registry.register("http_refused", "HTTP requests refused by access control, by reason", m.http_refused.clone());
        registry.register("audit_records", "Audit records committed to the trail", m.audit_records.clone());
        registry.register(
            "audit_dropped",
            "Audit records of security alerts dropped: the queue to the log writer was full",
            m.audit_dropped.clone(),
        );
        registry.register("sync_audit_records", "Audit records in pages the hub stored", m.sync_audit_records.clone());
        registry.register(
            "audit_syslog_sent",
            "Audit records handed to the syslog collector",
            m.audit_syslog_sent.clone(),
        );
        registry.register(
            "audit_syslog_backlog",
            "Audit records not yet forwarded to the syslog collector",
            m.audit_syslog_backlog.clone(),
        );
        Metrics { registry, ..m }
    }

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
