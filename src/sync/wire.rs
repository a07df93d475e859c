//! The hub contract on the wire, shared by the edge's sync worker and the reference hub.
//!
//! # Streams and epochs
//!
//! An edge's events live on the hub in a *stream* of sequence numbers. A stream has an
//! **epoch**: epoch 0 is the edge's original stream (the paths below without `/epochs/…`, as
//! they have always been). A later epoch is a new incarnation of the same edge's stream that
//! an operator started with `zenedge sync fork` after the edge's log and the hub's stopped
//! holding the same history (a restored backup that went on taking data while the hub had
//! already stored other events under the same numbers). Epoch `n` names its `parent` epoch
//! and its `fork_at`: the last sequence number the two histories share. Its history is the
//! parent's up to `fork_at`, then its own events; the parent keeps everything it holds, so
//! both histories stay readable and nothing is overwritten.
//!
//! | path | epoch 0 | epoch `n` |
//! | --- | --- | --- |
//! | batches | `POST /v1/edges/{edge_id}/events` | `POST /v1/edges/{edge_id}/epochs/{n}/events` |
//! | position | `GET /v1/edges/{edge_id}` | `GET /v1/edges/{edge_id}/epochs/{n}` |
//! | read back | `GET /v1/edges/{edge_id}/events?after=` | `GET /v1/edges/{edge_id}/epochs/{n}/events?after=` |
//! | new epoch | `POST /v1/edges/{edge_id}/epochs` with [`ForkRequest`] | |
//!
//! # Batches
//!
//! A batch carries the sequence numbers `first..=last` of the edge's log, contiguous. The body
//! is a gzip'ed (one or more gzip members, RFC 1952 §2.2) msgpack array of the
//! envelopes exactly as the edge wrote them (named fields, see [`crate::log::envelope`]), in
//! clear: values the edge seals at rest ([`crate::log::value`]) are opened before they are
//! sent, and no key material leaves the edge (the hub is the record holder; mutual TLS),
//! in ascending `seq`, *except* the sequence numbers listed in [`SKIPPED`]: events the
//! edge parked as dead letters because the hub refused them. Headers:
//!
//! | header | value |
//! | --- | --- |
//! | [`FIRST_SEQ`], [`LAST_SEQ`] | the batch's range |
//! | [`SKIPPED`] | comma-separated sequence numbers in the range that are not in the body (may be absent) |
//! | [`REDELIVERY`] | `1`: one dead letter sent again on an operator's request, `first == last`, out of order |
//! | [`PREV_EVENT_ID`] | the `event_id` of the edge's event `first - 1` (absent when `first` is 1): the chain |
//!
//! # Same length is not same history
//!
//! Sequence numbers alone cannot tell two histories apart: a restored edge numbers its new
//! events from where its backup ended, and the hub may already hold *other* events under those
//! numbers. So every position the hub states comes with the identity of what it holds there:
//! `last_event` = `{"seq", "event_id"}` of the last event it stores at or below
//! `stored_through` (`null` when it stores none). The edge compares that event id with its
//! own event at that seq before it moves its cursor; a difference is `hub_diverged`: the edge
//! stops sending and an operator decides (see the README). And the hub checks the chain: a
//! batch whose [`PREV_EVENT_ID`] differs from the event the hub holds at `first - 1` is
//! refused with `409` (error `"diverged"`-worded, `seq = first - 1`), nothing stored.
//!
//! # Answers
//!
//! * `200` with [`Stored`] once the batch is durable (`stored_through` = `last`, skipped
//!   sequence numbers included, and `last_event`);
//! * `409` with [`Refusal`], the hub's own `stored_through` and `last_event`, when
//!   `first != stored_through + 1` (the edge is behind or ahead: it checks the event id and
//!   realigns, or stops at `hub_diverged`) or when the chain does not hold;
//! * `400`, `413` or `422` with [`Refusal`]: the batch is unacceptable; the edge bisects
//!   it down to the offending event and parks that one;
//! * `404` for an epoch the hub does not have; anything else (`5xx`, `401`/`403`, network):
//!   retry later, the batch is unchanged.
//!
//! Redelivery: a skipped sequence number at or below `stored_through` is accepted and
//! stored; one already stored is answered `200` again; anything else is `409`.
//!
//! # Position
//!
//! `GET` on the position path answers [`Position`]; with `?at=SEQ` it also gives `event_at`:
//! the last event the hub stores at or below `SEQ` in that epoch's history (`null` if none).
//! For epoch 0 of an edge the hub never heard from it answers `404`: the edge takes that as
//! "the hub holds nothing of this edge" ([`Position::nothing`]) and sends its log from the
//! start. The edge reads its position before it sends anything after a start (and always
//! after a restore), after every close of its circuit breaker (a hub that was down may come
//! back restored from an older backup: it is refilled at once, not at the next event), and to
//! find the first sequence number at which two histories differ (by bisection).
//!
//! An edge needs a hub that states `last_event`: a hub that does not (an older one) gets no
//! realignment from it (`protocol` failure), since the edge could not tell whether both hold
//! the same history.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

pub const FIRST_SEQ: &str = "zenedge-first-seq";
pub const LAST_SEQ: &str = "zenedge-last-seq";
pub const SKIPPED: &str = "zenedge-skipped";
pub const REDELIVERY: &str = "zenedge-redelivery";
pub const PREV_EVENT_ID: &str = "zenedge-prev-event-id";
pub const CONTENT_TYPE: &str = "application/msgpack";

/// The path of an edge's event stream on the hub (epoch 0).
pub fn events_path(edge_id: &str) -> String {
    format!("/v1/edges/{edge_id}/events")
}

/// The path of the events of `epoch` of an edge's stream.
pub fn epoch_events_path(edge_id: &str, epoch: u64) -> String {
    match epoch {
        0 => events_path(edge_id),
        n => format!("/v1/edges/{edge_id}/epochs/{n}/events"),
    }
}

/// The path of the hub's position in `epoch` of an edge's stream.
pub fn position_path(edge_id: &str, epoch: u64) -> String {
    match epoch {
        0 => format!("/v1/edges/{edge_id}"),
        n => format!("/v1/edges/{edge_id}/epochs/{n}"),
    }
}

/// Where a new epoch is asked for.
pub fn epochs_path(edge_id: &str) -> String {
    format!("/v1/edges/{edge_id}/epochs")
}

/// An event by its place and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    pub seq: u64,
    pub event_id: uuid::Uuid,
}

/// Reads a field that may be absent (`None`: the sender does not know the field), `null`
/// (`Some(None)`) or a value (`Some(Some(v))`). Use with `#[serde(default)]`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `200`: the hub holds every event up to and including `stored_through`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub stored_through: u64,
    /// The last event the hub stores at or below `stored_through` (`Some(None)`: none;
    /// `None`: a hub that does not say).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub last_event: Option<Option<EventRef>>,
}

/// `409` and `4xx` answers. `stored_through` and `last_event` are set on `409`; `seq` names
/// the offending event when the hub knows it (the edge still bisects: it trusts only what it
/// can check), or, on a `409` for the chain, the sequence number whose event differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_through: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub last_event: Option<Option<EventRef>>,
}

impl Refusal {
    /// A refusal with only a message.
    pub fn new(error: impl Into<String>) -> Refusal {
        Refusal { error: error.into(), stored_through: None, seq: None, last_event: None }
    }
}

/// `GET` on a position path: where the hub is in one epoch of an edge's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub edge_id: String,
    #[serde(default)]
    pub epoch: u64,
    pub stored_through: u64,
    /// Envelopes stored in this epoch's own stream.
    pub events: u64,
    /// Skipped sequence numbers of this epoch's own stream not redelivered yet.
    pub skipped: Vec<u64>,
    #[serde(default, deserialize_with = "present")]
    pub last_event: Option<Option<EventRef>>,
    /// With `?at=SEQ`: the last event stored at or below `SEQ` in this epoch's history.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub event_at: Option<Option<EventRef>>,
    /// The epoch this one forked from (`None` for epoch 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// The last sequence number this epoch shares with its parent (0 for epoch 0).
    #[serde(default)]
    pub fork_at: u64,
    /// On `GET /v1/edges/{edge_id}`: every epoch of the edge, epoch 0 first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochSummary>,
}

impl Position {
    /// Where a hub that holds nothing of `edge_id` stands (its answer `404` to the position
    /// of epoch 0).
    pub fn nothing(edge_id: &str) -> Position {
        Position {
            edge_id: edge_id.to_owned(),
            epoch: 0,
            stored_through: 0,
            events: 0,
            skipped: Vec::new(),
            last_event: Some(None),
            event_at: None,
            parent: None,
            fork_at: 0,
            epochs: Vec::new(),
        }
    }
}

/// One epoch of an edge's stream, as `GET /v1/edges/{edge_id}` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    pub fork_at: u64,
    pub stored_through: u64,
    pub events: u64,
}

/// `POST /v1/edges/{edge_id}/epochs`: start a new epoch of the stream that forks from
/// `parent` after `fork_at`. `fork_event_id` is the edge's event at `fork_at` (absent when
/// `fork_at` is 0); the hub checks that the parent holds the same event there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRequest {
    pub parent: u64,
    pub fork_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_event_id: Option<uuid::Uuid>,
}

/// The answer to a [`ForkRequest`]: `201` for a new epoch, `200` for the one an earlier,
/// identical request made (the request is idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forked {
    pub epoch: u64,
    pub parent: u64,
    pub fork_at: u64,
    pub stored_through: u64,
}

/// The fields of an envelope the hub checks; the rest travels opaque.
#[derive(Debug, Clone, Deserialize)]
pub struct EnvelopeHead {
    pub seq: u64,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub edge_id: String,
}

/// Why a batch body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("body is not gzip: {0}")]
    Gzip(String),
    #[error("body expands beyond {0} bytes")]
    TooLarge(usize),
    #[error("body is not a msgpack array of envelopes: {0}")]
    Array(String),
    #[error("element {index} is not an envelope: {reason}")]
    Envelope { index: usize, reason: String },
    #[error("{0} trailing bytes after the array")]
    Trailing(usize),
}

/// Envelope bytes above which [`encode_batch`] compresses in two gzip members on two
/// threads (compression is most of the edge's work during a catch-up).
const PARALLEL_ABOVE: usize = 512 << 10;

/// Builds a batch body from stored envelopes: a msgpack array header, the envelopes'
/// bytes as stored (no re-encoding), gzip'ed at `level` (1 is plenty: msgpack of text).
/// A large batch becomes two gzip members compressed in parallel; RFC 1952 allows a gzip
/// file of several members, and [`decode_batch`] reads them all.
pub fn encode_batch<'a>(envelopes: impl ExactSizeIterator<Item = &'a [u8]>, level: u32) -> Vec<u8> {
    let mut header = Vec::with_capacity(5);
    // Infallible: writing into a Vec.
    let _ = rmp::encode::write_array_len(&mut header, envelopes.len() as u32);
    let parts: Vec<&[u8]> = std::iter::once(header.as_slice()).chain(envelopes.map(|e| -> &[u8] { e })).collect();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total <= PARALLEL_ABOVE {
        return gzip(&parts, level);
    }
    let mut half = 0;
    let split = parts.iter().position(|p| {
        half += p.len();
        half >= total / 2
    });
    let (front, back) = parts.split_at(split.map_or(parts.len(), |i| i + 1));
    if back.is_empty() {
        return gzip(front, level);
    }
    std::thread::scope(|scope| {
        let back = scope.spawn(|| gzip(back, level));
        let mut body = gzip(front, level);
        // A panic in the scoped thread would re-panic here; gzip into a Vec does not panic.
        body.extend(back.join().unwrap_or_default());
        body
    })
}

/// One gzip member holding `parts` in order.
fn gzip(parts: &[&[u8]], level: u32) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(size / 4 + 64), flate2::Compression::new(level));
    for part in parts {
        // Infallible: writing into a Vec.
        let _ = gz.write_all(part);
    }
    gz.finish().unwrap_or_default()
}

/// One envelope of a received batch: its checked head and its bytes as sent.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: EnvelopeHead,
    pub bytes: Vec<u8>,
}

/// Gunzips every member of `body`, refusing more than `max_bytes` expanded (the bound is
/// checked while reading, so a gzip bomb stops at `max_bytes + 1`).
pub(crate) fn gunzip_bounded(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, WireError> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| WireError::Gzip(e.to_string()))?;
    if plain.len() > max_bytes {
        return Err(WireError::TooLarge(max_bytes));
    }
    Ok(plain)
}

/// Reads a batch body: gunzip every member (refusing more than `max_bytes` expanded), then
/// split the array into envelopes, reading each one's head.
pub fn decode_batch(body: &[u8], max_bytes: usize) -> Result<Vec<Received>, WireError> {
    let plain = gunzip_bounded(body, max_bytes)?;
    let mut cursor = std::io::Cursor::new(plain.as_slice());
    let len = rmp::decode::read_array_len(&mut cursor).map_err(|e| WireError::Array(e.to_string()))? as usize;
    let mut out = Vec::with_capacity(len.min(100_000));
    for index in 0..len {
        let start = cursor.position() as usize;
        let head: EnvelopeHead = rmp_serde::decode::from_read(&mut cursor)
            .map_err(|e| WireError::Envelope { index, reason: e.to_string() })?;
        let end = cursor.position() as usize;
        out.push(Received { head, bytes: plain[start..end].to_vec() });
    }
    let rest = plain.len() - cursor.position() as usize;
    if rest != 0 {
        return Err(WireError::Trailing(rest));
    }
    Ok(out)
}

/// The value of [`SKIPPED`] for `seqs`.
pub fn format_skipped(seqs: &[u64]) -> String {
    seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// Parses [`SKIPPED`]: ascending, distinct sequence numbers.
pub fn parse_skipped(value: &str) -> Result<Vec<u64>, String> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    let seqs = value
        .split(',')
        .map(|s| s.trim().parse::<u64>().map_err(|_| format!("{s:?} is not a sequence number")))
        .collect::<Result<Vec<_>, _>>()?;
    if seqs.windows(2).any(|w| w[0] >= w[1]) {
        return Err("skipped sequence numbers must be ascending and distinct".into());
    }
    Ok(seqs)
}

/// Checks that `envelopes` and `skipped` together are exactly `first..=last`, each once, in
/// order, and that every envelope belongs to `edge_id`.
pub fn check_batch(
    edge_id: &str,
    first: u64,
    last: u64,
    envelopes: &[Received],
    skipped: &[u64],
) -> Result<(), Refusal> {
    let refuse = |error: String, seq: Option<u64>| Refusal { seq, ..Refusal::new(error) };
    if first == 0 || last < first {
        return Err(refuse(format!("range {first}..={last} is empty or starts at 0"), None));
    }
    if (last - first + 1) as usize != envelopes.len() + skipped.len() {
        return Err(refuse(
            format!(
                "range {first}..={last} holds {} sequence numbers, the batch {} envelopes and {} skipped",
                last - first + 1,
                envelopes.len(),
                skipped.len()
            ),
            None,
        ));
    }
    let mut skipped = skipped.iter().peekable();
    let mut envelopes = envelopes.iter().peekable();
    for seq in first..=last {
        if skipped.peek() == Some(&&seq) {
            skipped.next();
            continue;
        }
        match envelopes.next() {
            Some(e) if e.head.seq == seq => {
                if e.head.edge_id != edge_id {
                    return Err(refuse(
                        format!("event {seq} belongs to edge {:?}, not {edge_id:?}", e.head.edge_id),
                        Some(seq),
                    ));
                }
            }
            Some(e) => {
                return Err(refuse(format!("expected event {seq}, found event {}", e.head.seq), Some(e.head.seq)));
            }
            None => return Err(refuse(format!("event {seq} is missing"), Some(seq))),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
