//! What every MLLP connection shares: the listener's settings, the parse options, the log,
//! the metrics, the shutdown signal, the control ids of our acknowledgements, and the senders
//! already told that no application acknowledgement follows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::config::MllpConfig;
use crate::hl7::ReadOptions;
use crate::log::LogHandle;
use crate::projections::Projections;
use crate::security::Alerts;
use crate::telemetry::Metrics;

/// What every connection shares.
#[derive(Debug)]
pub struct MllpContext {
    pub config: MllpConfig,
    pub read_options: ReadOptions,
    pub log: LogHandle<Projections>,
    pub metrics: Arc<Metrics>,
    /// Refused addresses and senders are reported here.
    pub alerts: Alerts,
    /// Cancelled when the daemon shuts down: idle connections close, new frames get `AR`.
    pub shutdown: CancellationToken,
    pub ack_ids: AckIds,
    /// Senders already told (in the log) that no application acknowledgement is sent.
    pub app_acks: super::app_ack::AppAckNotices,
}

impl MllpContext {
    pub fn new(
        config: MllpConfig,
        log: LogHandle<Projections>,
        metrics: Arc<Metrics>,
        alerts: Alerts,
        shutdown: CancellationToken,
    ) -> MllpContext {
        let read_options =
            ReadOptions { accession_from: config.accession_from.clone(), fallback_charset: config.fallback_charset };
        let (ack_ids, app_acks) = (AckIds::new(), Default::default());
        MllpContext { config, read_options, log, metrics, alerts, shutdown, ack_ids, app_acks }
    }
}

/// Fresh control ids (MSH-10) for our acknowledgements: a counter started at the process's
/// start time in microseconds, so ids are unique across restarts as long as we send fewer
/// than a million ACKs per second on average. Sixteen decimal digits fit MSH-10's 20.
#[derive(Debug)]
pub struct AckIds(AtomicU64);

impl AckIds {
    pub fn new() -> AckIds {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        AckIds(AtomicU64::new(now.as_micros() as u64))
    }

    pub fn next(&self) -> String {
        self.0.fetch_add(1, Ordering::Relaxed).to_string()
    }
}

impl Default for AckIds {
    fn default() -> Self {
        AckIds::new()
    }
}
