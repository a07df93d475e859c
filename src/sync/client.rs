//! The hub client: one batch out, one classified [`Outcome`] back.
//!
//! [`Transport`] is what the worker needs from the network, so its logic is tested against
//! a fake hub. [`HttpTransport`] is the real one: a blocking ureq 3 agent (it runs on the
//! sync thread, never on tokio's workers) over rustls with ring, trusting only the
//! configured CA bundle and presenting the edge's certificate (mutual TLS). It never
//! follows redirects, uses no proxy, reads answers up to [`MAX_ANSWER_BYTES`], and gives
//! the whole exchange `sync.timeout` (connecting, TLS included, `sync.connect_timeout`).
//!
//! Answers are classified per the contract in [`super::wire`]: `200` → [`Outcome::Stored`],
//! `409` → [`Outcome::Conflict`] (both with what the hub [`Reported`] about where it is),
//! `400`/`413`/`422` → [`Outcome::Refused`], anything else, and every network or TLS error,
//! → [`Outcome::Failure`] with a [`FailureKind`]. Besides batches, the transport reads the
//! hub's position (`GET`, to compare histories) and asks for a new epoch (`zenedge sync fork`).

use std::sync::Arc;
use std::time::Duration;

use super::tls::ClientTls;
use super::wire::{self, EventRef, ForkRequest, Forked, Position};

/// Largest answer body read from the hub (its answers are a few dozen bytes of JSON).
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// One request to the hub: a batch of the log, or one dead letter sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The epoch of the edge's stream it goes to.
    pub epoch: u64,
    /// The edge's event at `first - 1` (the chain the hub checks).
    pub prev_event_id: Option<uuid::Uuid>,
    pub first: u64,
    pub last: u64,
    /// Sequence numbers in `first..=last` that are not in the body.
    pub skipped: Vec<u64>,
    /// A dead letter redelivered on an operator's request (`first == last`).
    pub redelivery: bool,
    /// Envelopes in the body.
    pub events: usize,
    /// The gzip'ed msgpack array ([`wire::encode_batch`]).
    pub body: Vec<u8>,
}

/// What the hub said about where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// The hub holds every event up to this one (stored or skipped).
    pub stored_through: u64,
    /// The last event it stores at or below `stored_through`: `Some(None)` when it stores
    /// none, `None` when it did not say (a hub older than this edge).
    pub last_event: Option<Option<EventRef>>,
}

impl Reported {
    /// A position with the hub's last event.
    pub fn new(stored_through: u64, last_event: Option<EventRef>) -> Reported {
        Reported { stored_through, last_event: Some(last_event) }
    }
}

/// What the hub made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `200`: the hub holds every event up to `stored_through`.
    Stored(Reported),
    /// `409`: the hub's own position; the edge checks it holds the same history, then
    /// realigns to it.
    Conflict(Reported),
    /// `400`/`413`/`422`: the batch is unacceptable, with the hub's reason.
    Refused(String),
    /// Anything else: try again later.
    Failure(Failure),
}

/// A failed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure { kind, message: message.into() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// Kinds of failure, the `kind` label of `zenedge_sync_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection (refused, unreachable, unknown host, dropped).
    Connect,
    /// No answer in time.
    Timeout,
    /// The TLS handshake failed (certificates, protocol).
    Tls,
    /// The hub answered 5xx.
    Http5xx,
    /// The hub answered 401, 403, 404 or another 4xx that is not a refusal.
    Http4xx,
    /// An answer that does not follow the contract.
    Protocol,
    /// The hub claims events beyond the end of this log.
    HubAhead,
    /// The hub holds other events than this log under the same sequence numbers: the sync
    /// stops until an operator acts.
    HubDiverged,
}

impl FailureKind {
    pub const ALL: [FailureKind; 8] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Tls,
        FailureKind::Http5xx,
        FailureKind::Http4xx,
        FailureKind::Protocol,
        FailureKind::HubAhead,
        FailureKind::HubDiverged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Tls => "tls",
            FailureKind::Http5xx => "http_5xx",
            FailureKind::Http4xx => "http_4xx",
            FailureKind::Protocol => "protocol",
            FailureKind::HubAhead => "hub_ahead",
            FailureKind::HubDiverged => "hub_diverged",
        }
    }
}

/// Talks to the hub. Blocking: called from the sync thread only.
pub trait Transport: Send {
    /// Sends one batch (to `batch.epoch`).
    fn send(&mut self, batch: &Batch) -> Outcome;
    /// The hub's position in `epoch`, with the last event at or below `at` when asked.
    fn position(&mut self, epoch: u64, at: Option<u64>) -> Result<Position, Failure>;
    /// Asks for a new epoch of this edge's stream.
    fn fork(&mut self, request: &ForkRequest) -> Result<Forked, Failure>;
    /// Sends one page of audit records. A transport that cannot carry them says so.
    fn send_audit(&mut self, _page: &AuditPage) -> AuditOutcome {
        AuditOutcome::Unsupported("this transport carries no audit records".into())
    }
}

/// One page of the audit trail for the hub ([`super::wire_audit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The ids of its first and last record.
    pub first: u64,
    pub last: u64,
    pub records: usize,
    /// The gzip'ed msgpack array ([`super::wire_audit::encode_audit_page`]).
    pub body: Vec<u8>,
}

/// What the hub made of an audit page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    /// `200`: the hub holds every record of the page.
    Stored(super::wire_audit::AuditStored),
    /// `404`/`405`: a hub that does not take audit records (older than the contract).
    Unsupported(String),
    /// Anything else: try again later.
    Failure(Failure),
}

/// The hub over HTTP(S) with ureq.
pub struct HttpTransport {
    agent: ureq::Agent,
    /// `hub_url`, without a trailing slash.
    base: String,
    edge_id: String,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("base", &self.base)
            .field("edge_id", &self.edge_id)
            .finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// An agent for `hub_url`: with `tls` (already checked by [`super::tls::load`]) for
    /// https, without for plain http.
    pub fn new(
        hub_url: &str,
        edge_id: &str,
        tls: Option<&ClientTls>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> HttpTransport {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(connect_timeout))
            .timeout_per_call(Some(timeout))
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("zenedge/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls {
            config = config.https_only(true).tls_config(tls_config(tls));
        }
        HttpTransport { agent: config.build().new_agent(), base: hub_url.to_owned(), edge_id: edge_id.to_owned() }
    }

    /// Reads an answer body (up to [`MAX_ANSWER_BYTES`]): its status and bytes.
    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, Vec<u8>), Failure> {
        let mut response = result.map_err(|e| error_failure(&e, ""))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_vec()
            .map_err(|e| error_failure(&e, &format!("answer {status} unreadable: ")))?;
        Ok((status, body))
    }
}

/// ureq's TLS settings: ring, the CA bundle as the only roots, the client certificate.
pub fn tls_config(tls: &ClientTls) -> ureq::tls::TlsConfig {
    use ureq::tls::{Certificate, ClientCert, RootCerts, TlsConfig, TlsProvider};
    let roots: Vec<Certificate<'static>> = tls.roots.iter().map(|c| Certificate::from_der(c).to_owned()).collect();
    let chain: Vec<Certificate<'static>> = tls.chain.iter().map(|c| Certificate::from_der(c).to_owned()).collect();
    let key = tls.ureq_key.to_owned();
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(&roots))
        .client_cert(Some(ClientCert::new_with_certs(&chain, key)))
        .build()
}

impl Transport for HttpTransport {
    fn send(&mut self, batch: &Batch) -> Outcome {
        let url = format!("{}{}", self.base, wire::epoch_events_path(&self.edge_id, batch.epoch));
        let mut request = self
            .agent
            .post(&url)
            .header("content-type", wire::CONTENT_TYPE)
            .header("content-encoding", "gzip")
            .header(wire::FIRST_SEQ, batch.first.to_string())
            .header(wire::LAST_SEQ, batch.last.to_string());
        if !batch.skipped.is_empty() {
            request = request.header(wire::SKIPPED, wire::format_skipped(&batch.skipped));
        }
        if batch.redelivery {
            request = request.header(wire::REDELIVERY, "1");
        }
        if let Some(prev) = batch.prev_event_id {
            request = request.header(wire::PREV_EVENT_ID, prev.hyphenated().to_string());
        }
        match HttpTransport::answer(request.send(batch.body.as_slice())) {
            Ok((status, body)) => classify(status, &body),
            Err(failure) => Outcome::Failure(failure),
        }
    }

    fn position(&mut self, epoch: u64, at: Option<u64>) -> Result<Position, Failure> {
        let query = at.map(|at| format!("?at={at}")).unwrap_or_default();
        let url = format!("{}{}{query}", self.base, wire::position_path(&self.edge_id, epoch));
        let (status, body) = HttpTransport::answer(self.agent.get(&url).call())?;
        match status {
            200 => serde_json::from_slice(&body).map_err(|e| {
                Failure::new(FailureKind::Protocol, format!("the hub's position is not what the contract says: {e}"))
            }),
            // An edge the hub never heard from (a hub restored from a backup older than this
            // edge's first batch, or a new one): it holds nothing, and the edge sends it all.
            404 if epoch == 0 => Ok(Position::nothing(&self.edge_id)),
            _ => Err(not_ok(status, &body)),
        }
    }

    fn fork(&mut self, request: &ForkRequest) -> Result<Forked, Failure> {
        let url = format!("{}{}", self.base, wire::epochs_path(&self.edge_id));
        let json = serde_json::to_vec(request).unwrap_or_default();
        let sent = self.agent.post(&url).header("content-type", "application/json").send(json.as_slice());
        let (status, body) = HttpTransport::answer(sent)?;
        match status {
            200 | 201 => serde_json::from_slice(&body).map_err(|e| {
                Failure::new(
                    FailureKind::Protocol,
                    format!("the hub's answer to a new epoch is not what the contract says: {e}"),
                )
            }),
            409 => Err(Failure::new(
                FailureKind::Protocol,
                format!("the hub refused the new epoch: {}", refusal_text(&body)),
            )),
            _ => Err(not_ok(status, &body)),
        }
    }

    fn send_audit(&mut self, page: &AuditPage) -> AuditOutcome {
        match self.post_audit(page) {
            Ok((status, body)) => classify_audit(status, &body),
            Err(failure) => AuditOutcome::Failure(failure),
        }
    }
}

impl HttpTransport {
    fn post_audit(&mut self, page: &AuditPage) -> Result<(u16, Vec<u8>), Failure> {
        let url = format!("{}{}", self.base, super::wire_audit::audit_path(&self.edge_id));
        let request =
            self.agent.post(&url).header("content-type", wire::CONTENT_TYPE).header("content-encoding", "gzip");
        HttpTransport::answer(request.send(page.body.as_slice()))
    }
}

/// Classifies the hub's answer to an audit page.
pub fn classify_audit(status: u16, body: &[u8]) -> AuditOutcome {
    match status {
        200 => match serde_json::from_slice(body) {
            Ok(stored) => AuditOutcome::Stored(stored),
            Err(e) => AuditOutcome::Failure(Failure::new(
                FailureKind::Protocol,
                format!("answer 200 to an audit page is not {{\"stored_through\", \"stored\"}}: {e}"),
            )),
        },
        404 | 405 => AuditOutcome::Unsupported(format!("hub answered {status}: {}", refusal_text(body))),
        _ => AuditOutcome::Failure(not_ok(status, body)),
    }
}

/// The `error` of a refusal, else the start of the body.
fn refusal_text(body: &[u8]) -> String {
    match serde_json::from_slice::<wire::Refusal>(body) {
        Ok(r) => r.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_owned(),
    }
}

/// A failure for an answer that is not what a `GET` or a new epoch expects.
fn not_ok(status: u16, body: &[u8]) -> Failure {
    let kind = match status {
        500..=599 => FailureKind::Http5xx,
        400..=499 => FailureKind::Http4xx,
        _ => FailureKind::Protocol,
    };
    Failure::new(kind, format!("hub answered {status}: {}", refusal_text(body)))
}

/// Classifies the hub's answer by status and body.
pub fn classify(status: u16, body: &[u8]) -> Outcome {
    let refusal = || serde_json::from_slice::<wire::Refusal>(body).ok();
    let text = || refusal_text(body);
    match status {
        200 => match serde_json::from_slice::<wire::Stored>(body) {
            Ok(stored) => {
                Outcome::Stored(Reported { stored_through: stored.stored_through, last_event: stored.last_event })
            }
            Err(e) => Outcome::Failure(Failure::new(
                FailureKind::Protocol,
                format!("answer 200 is not {{\"stored_through\": N}}: {e}"),
            )),
        },
        409 => match refusal() {
            Some(wire::Refusal { stored_through: Some(at), last_event, .. }) => {
                Outcome::Conflict(Reported { stored_through: at, last_event })
            }
            _ => Outcome::Failure(Failure::new(FailureKind::Protocol, "answer 409 without stored_through")),
        },
        400 | 413 | 422 => Outcome::Refused(format!("{status}: {}", text())),
        500..=599 => Outcome::Failure(Failure::new(FailureKind::Http5xx, format!("hub answered {status}: {}", text()))),
        401 | 403 => Outcome::Failure(Failure::new(
            FailureKind::Http4xx,
            format!("hub answered {status} (is this edge's certificate accepted for its edge id?): {}", text()),
        )),
        400..=499 => Outcome::Failure(Failure::new(FailureKind::Http4xx, format!("hub answered {status}: {}", text()))),
        _ => Outcome::Failure(Failure::new(FailureKind::Protocol, format!("unexpected answer {status}: {}", text()))),
    }
}

/// Classifies a ureq error.
fn error_failure(e: &ureq::Error, prefix: &str) -> Failure {
    use ureq::Error;
    use ureq::Timeout;
    let kind = match e {
        Error::Timeout(Timeout::Connect | Timeout::Resolve) => FailureKind::Connect,
        Error::Timeout(_) => FailureKind::Timeout,
        Error::HostNotFound | Error::ConnectionFailed => FailureKind::Connect,
        Error::Tls(_) | Error::Pem(_) | Error::Rustls(_) | Error::TlsRequired => FailureKind::Tls,
        Error::Io(io) => io_kind(io),
        _ => FailureKind::Protocol,
    };
    let text = match e {
        Error::Rustls(tls) => crate::tls_words::describe(tls),
        Error::Io(io) => crate::tls_words::describe_io(io),
        other => other.to_string(),
    };
    Failure::new(kind, format!("{prefix}{text}"))
}

fn io_kind(e: &std::io::Error) -> FailureKind {
    use std::io::ErrorKind::*;
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return FailureKind::Tls;
    }
    match e.kind() {
        TimedOut | WouldBlock => FailureKind::Timeout,
        InvalidData => FailureKind::Tls,
        _ => FailureKind::Connect,
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
