//! The reference hub (`zenedge hub`): receives edges' event batches over the hub contract of
//! [`crate::sync::wire`] and stores each edge's events exactly once per `(edge_id, epoch, seq)`.
//! It is what the edge's sync is tested against, and enough for a small deployment.
//!
//! # The contract as this hub implements it
//!
//! `POST /v1/edges/{edge_id}/events` (epoch 0) and `POST /v1/edges/{edge_id}/epochs/{n}/events`
//! (a later epoch, see below), checked in this order:
//! 1. `edge_id` is 1-64 characters of `A-Z a-z 0-9 . _ -` (else `400`), and, on a connection
//!    with a client certificate, the certificate's edge (else `403`, see below);
//! 2. `Content-Type: application/msgpack` and `Content-Encoding: gzip` (else `415`);
//! 3. the `zenedge-first-seq`, `zenedge-last-seq`, `zenedge-skipped`, `zenedge-redelivery` and
//!    `zenedge-prev-event-id` headers parse (else `400`); a redelivery has `first == last` and
//!    no skipped list;
//! 4. the compressed body is at most [`routes::compressed_limit`] bytes (else `413`);
//! 5. the epoch exists (else `404`); for a batch (not a redelivery),
//!    `first == stored_through + 1`, else `409` with the hub's `stored_through` and
//!    `last_event`, the body not even decompressed;
//! 6. the body expands to at most `max_batch_bytes` (else `413`) and is a msgpack array of
//!    envelopes (else `400`);
//! 7. no envelope is larger than `max_event_bytes` (else `422` naming its `seq`), and
//!    [`crate::sync::wire::check_batch`] holds: envelopes and skipped numbers are exactly
//!    `first..=last`, in order, every envelope of this edge (else `422`);
//! 8. one write transaction (`Durability::Immediate`) checks `first == stored_through + 1`
//!    again, checks the chain (the event the hub holds at `first - 1` in the epoch's history
//!    must be the one `zenedge-prev-event-id` names, else `409` "the histories diverged" with
//!    `seq = first - 1`, logged at WARN), stores every envelope byte for byte under
//!    `(stream, seq)`, records the skipped numbers and sets `stored_through = last`; only after
//!    its commit returned is `200 {"stored_through": last, "last_event": {"seq", "event_id"}}`
//!    sent. A batch that lost a race is `409`, nothing stored.
//!
//! A redelivery (`zenedge-redelivery: 1`, one envelope) of a sequence number recorded as
//! skipped is stored and the skip forgotten, `200 {"stored_through": <unchanged>, …}`; of one
//! stored already, `200` again with nothing written; of any other, `409`.
//!
//! # Two histories of one edge: epochs
//!
//! When an edge's log and what the hub holds for it stop being the same history (a restored
//! backup took new events under numbers the hub already holds with others), the edge stops
//! syncing (`hub_diverged`) and an operator may run `zenedge sync fork`. The edge then asks
//! `POST /v1/edges/{edge_id}/epochs` with `{"parent", "fork_at", "fork_event_id"}`: the hub
//! checks that the parent epoch holds at most `fork_at` (else `409`) and the same event at
//! `fork_at` (else `409`), and creates the next epoch number with `stored_through = fork_at`
//! (`201 {"epoch", "parent", "fork_at", "stored_through"}`; the same request again answers the
//! same epoch with `200`, so an interrupted fork can be repeated). The edge's divergent events
//! then go to the new epoch; the old one keeps everything it holds. Nothing is overwritten,
//! and each history reads back whole (see [`epochs`]).
//!
//! Reading back: `GET /v1/edges/{edge_id}` → `{"edge_id", "epoch": 0, "stored_through",
//! "events" (count), "skipped" ([seq]), "last_event", "fork_at", "epochs": [{"epoch",
//! "parent", "fork_at", "stored_through", "events"}]}`, or `404` for an edge the hub never
//! heard from (the edge takes it as "the hub holds nothing of this edge"); `GET /v1/edges/{edge_id}/epochs/{n}` → the same for epoch `n` with its `parent`;
//! `?at=SEQ` on either adds `event_at`, the last event stored at or below `SEQ` in that
//! epoch's history. `GET /v1/edges/{edge_id}[/epochs/{n}]/events?after=SEQ&limit=N` (limit
//! 1-1000, default 100) → `{"items": [{"seq", "epoch", "event"}], "next": SEQ|null,
//! "stored_through"}`: the epoch's whole history (its parent's events up to the fork point,
//! then its own), `event` being the stored msgpack converted generically ([`json`]: binary as
//! base64, UUIDs as text), so newer event types show too. `GET /healthz` → `ok`;
//! `GET /metrics` → [`metrics`].
//!
//! Every edge at once: `GET /v1/events?after_cursor=C&limit=N&wait=S` → `{"items":
//! [{"edge_id", "epoch", "seq", "cursor", "event"}], "next": C}`, in commit order, never
//! skipping an event whose transaction committed late; the cursor is `"<tx>.<feed_id>"`
//! (PostgreSQL store only; see [`feed`] and [`pg::feed`]).
//!
//! Audit records: `POST /v1/edges/{edge_id}/audit` stores a page of an edge's audit trail once
//! per `(edge_id, id)`; `GET /v1/audit?edge=&after=&limit=` pages through it (see [`audit`]).
//!
//! # Stores
//!
//! [`HubStore`] is redb in a state directory ([`store`], [`epochs`]) or PostgreSQL ([`pg`]);
//! both give the answers of [`outcome`] with the same guarantees, so the routes do not ask
//! which. A store that cannot reach its database is `503` (the edge retries later).
//!
//! # Slow clients
//!
//! The headers of each request must arrive within `header_timeout` (the connection is closed
//! otherwise) and a batch's body within `body_timeout` (`408`), on plain HTTP and TLS alike
//! ([`server`], [`receive`]).
//!
//! # Identity
//!
//! With a client CA, every TLS client must present a certificate chaining to it (a missing,
//! expired or foreign certificate fails the handshake, logged at WARN with the peer and the
//! reason). The certificate names the edge: its subject Common Name is the edge id (a DNS
//! subject alternative name equal to the edge id is accepted too). Every request on that
//! connection may touch only `/v1/edges/{that edge}/…`; another edge's path is
//! `403 {"error": "certificate is for edge X, not Y"}`. Without TLS, or with TLS but no client
//! CA, the hub is unauthenticated (logged at WARN at start) and any client may write any edge.
//!
//! The storage contract is in [`store`]; the TLS accept loop, and why it is hand-written, in
//! [`server`].

mod audit;
mod audit_redb;
mod command;
pub mod epochs;
mod feed;
mod json;
pub mod metrics;
pub mod outcome;
pub mod pg;
mod read;
mod receive;
pub mod routes;
pub mod server;
mod storage;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

pub use command::{HubFile, run_command};
pub use feed::CONSUMER_PREFIX;
pub use json::envelope_json;
pub use pg::{PgSettings, PgStore};
pub use server::{serve, tls_config};
pub use storage::HubStore;
pub use store::RedbStore;

/// The hub's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubOptions {
    /// Largest batch body accepted once decompressed (`413` beyond).
    pub max_batch_bytes: usize,
    /// Largest single envelope accepted; a batch holding a larger one is `422`, naming it.
    pub max_event_bytes: usize,
    /// A request's headers must arrive within this time on an open connection (plain HTTP
    /// and TLS alike); the connection is closed otherwise.
    pub header_timeout: Duration,
    /// A batch's body must arrive within this time after its headers (`408` otherwise): a
    /// slowly sent body holds one connection for at most this long and at most the body
    /// limit of memory.
    pub body_timeout: Duration,
}

impl Default for HubOptions {
    /// The command line's defaults: 64 MiB batches, 16 MiB events, 30 s for headers, 60 s
    /// for a body.
    fn default() -> HubOptions {
        HubOptions {
            max_batch_bytes: 64 << 20,
            max_event_bytes: 16 << 20,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// The hub's certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubTls {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle (PEM) client certificates must chain to; `None`: no client authentication.
    pub client_ca: Option<PathBuf>,
}

/// The hub's routes, without TLS. A request that carries an [`EdgeIdentity`] extension (the
/// TLS accept loop adds one per client certificate) may only touch that edge's paths; without
/// one, every edge's paths are open.
pub fn router(store: HubStore, options: HubOptions) -> Router {
    let body_limit = routes::compressed_limit(options.max_batch_bytes);
    let metrics = std::sync::Arc::new(metrics::HubMetrics::new(&store));
    Router::new()
        .route("/v1/edges/{edge_id}", get(read::edge_position))
        .route("/v1/edges/{edge_id}/events", get(read::read_events).post(receive::receive))
        .route("/v1/edges/{edge_id}/audit", post(audit::receive_audit))
        .route("/v1/edges/{edge_id}/epochs", post(routes::fork))
        .route("/v1/edges/{edge_id}/epochs/{epoch}", get(read::epoch_position))
        .route("/v1/edges/{edge_id}/epochs/{epoch}/events", get(read::epoch_events).post(receive::receive_in_epoch))
        .route_layer(middleware::from_fn(routes::authorize))
        .route("/v1/events", get(feed::read_feed))
        .route(crate::sync::wire_audit::AUDIT_READ_PATH, get(audit::read_audit))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        // The batch handler reads its body itself, under the same limit, so that it can answer
        // 413 with a `Refusal`; this bounds every other body too.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(routes::Hub { store, options, metrics })
}

/// Why the hub cannot start or answer.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{}: {problem}", file.display())]
    Tls { file: PathBuf, problem: String },
    #[error("cannot create the hub's state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the hub database {path}: {source}")]
    Open { path: PathBuf, source: Box<redb::Error> },
    #[error(
        "{path} was written by a newer zenedge hub (schema {found}; this binary knows up to {known}); \
         run the newer version again"
    )]
    NewerSchema { path: PathBuf, found: u64, known: u64 },
    #[error("hub database error: {0}")]
    Storage(Box<redb::Error>),
    #[error("{0}")]
    PgConfig(String),
    /// The database cannot be reached or is restarting: try again later (`503`).
    #[error("the hub's database is unavailable: {0}")]
    Unavailable(String),
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    #[error("{0}")]
    Migration(String),
    #[error(
        "the hub's PostgreSQL database was migrated by a newer zenedge hub (schema {found}; this binary knows up to \
         {known}); run the newer version"
    )]
    NewerDatabaseSchema { found: u64, known: u64 },
    /// A sequence number or epoch above what a `bigint` column holds.
    #[error("sequence number {0} is beyond 2^63 - 1")]
    SeqRange(u64),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("a hub task failed: {0}")]
    Task(String),
}

impl HubError {
    fn tls(file: &Path, problem: impl Into<String>) -> HubError {
        HubError::Tls { file: file.to_owned(), problem: problem.into() }
    }
}

/// Who is on the other end of a connection, from its client certificate: the edge ids it may
/// write. Put in each request's extensions by the TLS accept loop (or by a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeIdentity {
    /// The subject Common Name first (if any), then the DNS subject alternative names.
    names: Vec<String>,
}

impl EdgeIdentity {
    /// An identity allowed the edge ids `names`; the first is the one shown in refusals.
    pub fn new(names: Vec<String>) -> EdgeIdentity {
        EdgeIdentity { names }
    }

    /// The identity of a (verified) DER certificate: its subject CN and DNS names. A
    /// certificate that names nothing may touch no edge.
    pub fn from_der(der: &[u8]) -> EdgeIdentity {
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return EdgeIdentity { names: Vec::new() };
        };
        let mut names: Vec<String> =
            cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).map(str::to_owned).collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name
                    && !names.iter().any(|n| n == dns)
                {
                    names.push((*dns).to_owned());
                }
            }
        }
        EdgeIdentity { names }
    }

    /// Whether this identity may read and write `edge_id`'s stream.
    pub fn may_access(&self, edge_id: &str) -> bool {
        self.names.iter().any(|n| n == edge_id)
    }

    /// The name shown in logs and refusals.
    pub fn name(&self) -> &str {
        self.names.first().map_or("(none: the certificate has no common name or DNS name)", String::as_str)
    }

    /// Every edge id this identity may touch.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

#[cfg(test)]
mod tests;
