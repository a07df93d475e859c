//! The hub's `/metrics` (Prometheus text): batches and events stored, batch and COPY times,
//! the connection pool, and per edge where it stands and how old its newest stored event is.
//!
//! | metric | meaning |
//! | --- | --- |
//! | `zenedge_hub_batches_total{outcome}` | batches answered: `stored`, `conflict` (409), `refused` (4xx), `unavailable` (503), `error` (500) |
//! | `zenedge_hub_events_total` | envelopes stored |
//! | `zenedge_hub_batch_seconds` | receipt of the headers to the answer, stored batches |
//! | `zenedge_hub_copy_seconds` | the binary COPY of a batch (PostgreSQL) |
//! | `zenedge_hub_pool_connections{state}` | `open`, `idle`, `waiting` (requests waiting for one); PostgreSQL |
//! | `zenedge_hub_edge_stored_through{edge_id}` | the last seq stored (epoch of the batch) |
//! | `zenedge_hub_edge_lag_seconds{edge_id}` | at the last stored batch: its commit time minus the `recorded_at` of its newest event (how far behind the edge's log the hub was) |

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::HubStore;

/// Buckets of the time histograms: 1 ms to about 16 s.
pub fn seconds_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15)
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    stored,
    conflict,
    refused,
    unavailable,
    error,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EdgeLabels {
    edge_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

/// The hub's metrics, shared by every route.
#[derive(Debug)]
pub struct HubMetrics {
    registry: Registry,
    batches: Family<OutcomeLabels, Counter>,
    events: Counter,
    batch_seconds: Histogram,
    pool: Family<PoolLabels, Gauge>,
    stored_through: Family<EdgeLabels, Gauge>,
    lag_seconds: Family<EdgeLabels, Gauge<f64, AtomicU64>>,
    store: HubStore,
}

impl HubMetrics {
    pub fn new(store: &HubStore) -> HubMetrics {
        let mut registry = Registry::default();
        let batches = Family::<OutcomeLabels, Counter>::default();
        registry.register("zenedge_hub_batches", "Batches answered, by outcome", batches.clone());
        let events = Counter::default();
        registry.register("zenedge_hub_events", "Envelopes stored", events.clone());
        let batch_seconds = Histogram::new(seconds_buckets());
        registry.register("zenedge_hub_batch_seconds", "Time to store and answer a batch", batch_seconds.clone());
        if let HubStore::Postgres(pg) = store {
            registry.register("zenedge_hub_copy_seconds", "Time of a batch's binary COPY", pg.copy_histogram());
        }
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register("zenedge_hub_pool_connections", "Database connections by state", pool.clone());
        let stored_through = Family::<EdgeLabels, Gauge>::default();
        registry.register(
            "zenedge_hub_edge_stored_through",
            "Last sequence number stored per edge",
            stored_through.clone(),
        );
        let lag_seconds = Family::<EdgeLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "zenedge_hub_edge_lag_seconds",
            "Commit time of the edge's last batch minus the recorded_at of its newest event",
            lag_seconds.clone(),
        );
        HubMetrics { registry, batches, events, batch_seconds, pool, stored_through, lag_seconds, store: store.clone() }
    }

    /// A batch answered with `outcome`.
    pub fn batch(&self, outcome: Outcome) {
        self.batches.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A batch stored: its events, its time, where the edge now stands and how far behind.
    pub fn stored(&self, edge_id: &str, events: usize, seconds: f64, stored_through: u64, lag: Option<f64>) {
        self.batch(Outcome::stored);
        self.events.inc_by(events as u64);
        self.batch_seconds.observe(seconds);
        let labels = EdgeLabels { edge_id: edge_id.to_owned() };
        self.stored_through.get_or_create(&labels).set(i64::try_from(stored_through).unwrap_or(i64::MAX));
        if let Some(lag) = lag {
            self.lag_seconds.get_or_create(&labels).set(lag);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        if let HubStore::Postgres(pg) = &self.store {
            let status = pg.pool_status();
            let set = |state, n: usize| self.pool.get_or_create(&PoolLabels { state }).set(n as i64);
            set("open", status.size);
            set("idle", status.available);
            set("waiting", status.waiting);
        }
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
