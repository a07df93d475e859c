//! `GET /v1/events?after_cursor=C&limit=N&wait=S`: every edge's events in one feed, for the
//! hub's consumers (PostgreSQL store; `501` on redb).
//!
//! Answer: `{"items": [{"edge_id", "epoch", "seq", "cursor", "event"}], "next": C}`, `event`
//! being the stored envelope as JSON ([`super::json`]); `next` is the cursor to send back as
//! `after_cursor` (the same one when nothing new was there). The order, and why it never skips
//! an event whose transaction committed late, is in [`super::pg::feed`]; the cursor is
//! `"<tx>.<feed_id>"` (`""` or absent: from the start). `limit` 1-1000 (default 100).
//! `wait` (seconds, 0-60, default 0) makes it a long poll: with nothing after the cursor the
//! answer waits until an event is stored (woken by PostgreSQL's `LISTEN/NOTIFY`, so within
//! milliseconds of the commit) or `wait` ran out (then `items` is empty).
//!
//! Who may read: without client certificates, anyone who reaches the hub; with them, only a
//! certificate whose Common Name (or DNS name) starts with `consumer:` (which no edge id can),
//! never an edge's.

use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::EdgeIdentity;
use super::json::{EnvelopeJson, render};
use super::pg::{Feed, FeedCursor};
use super::read::limit_param;
use super::routes::{Hub, Reject};

/// The longest long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A long poll looks at the table at least this often even without a notification: a
/// transaction left open elsewhere in the database holds the feed back (see
/// [`super::pg::feed`]) and its end sends no notification.
const RECHECK: Duration = Duration::from_secs(1);

/// The prefix of a certificate name that may read the feed.
pub const CONSUMER_PREFIX: &str = "consumer:";

#[derive(Debug, Deserialize)]
pub(super) struct FeedParams {
    after_cursor: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

/// A page of the feed as its JSON shows it.
#[derive(Debug)]
struct FeedJson(Feed);

#[derive(Debug, Serialize)]
struct FeedItemJson<'a> {
    edge_id: &'a str,
    epoch: u64,
    seq: u64,
    cursor: String,
    event: EnvelopeJson<'a>,
}

impl Serialize for FeedJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Page<'a> {
            items: Vec<FeedItemJson<'a>>,
            next: String,
        }
        let items = self
            .0
            .items
            .iter()
            .map(|i| FeedItemJson {
                edge_id: &i.edge_id,
                epoch: i.epoch,
                seq: i.seq,
                cursor: i.cursor.to_string(),
                event: EnvelopeJson(&i.bytes),
            })
            .collect();
        Page { items, next: self.0.next.to_string() }.serialize(serializer)
    }
}

/// With client certificates, only a consumer's (`consumer:…`) may read `what` (`403`).
pub(super) fn consumer_only(identity: Option<&EdgeIdentity>, what: &str) -> Result<(), Reject> {
    if let Some(identity) = identity
        && !identity.names().iter().any(|n| n.starts_with(CONSUMER_PREFIX))
    {
        let error = format!(
            "certificate {} may not read {what}: only a certificate named {CONSUMER_PREFIX}… may",
            identity.name()
        );
        return Err(Reject::new(StatusCode::FORBIDDEN, "not a consumer", error));
    }
    Ok(())
}

pub(super) async fn read_feed(
    State(hub): State<Hub>,
    identity: Option<Extension<EdgeIdentity>>,
    query: Result<Query<FeedParams>, QueryRejection>,
) -> Result<axum::response::Response, Reject> {
    consumer_only(identity.as_ref().map(|Extension(i)| i), "the feed")?;
    let Query(params) = query.map_err(|e| Reject::bad_request("bad query", e.body_text()))?;
    let after = FeedCursor::parse(params.after_cursor.as_deref().unwrap_or(""))
        .map_err(|e| Reject::bad_request("bad query", e))?;
    let limit = limit_param(params.limit.as_deref())?;
    let wait = match params.wait.as_deref() {
        None => Duration::ZERO,
        Some(v) => v.parse::<u64>().ok().map(Duration::from_secs).filter(|w| *w <= MAX_WAIT).ok_or_else(|| {
            Reject::bad_request(
                "bad query",
                format!("wait must be a number of seconds from 0 to {}", MAX_WAIT.as_secs()),
            )
        })?,
    };
    let deadline = Instant::now() + wait;
    loop {
        let seen = hub.store.notifications();
        let feed = hub.store.feed(after, limit).await.map_err(Reject::store)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !feed.items.is_empty() || left.is_zero() {
            return render(FeedJson(feed)).await;
        }
        hub.store.wait_for_events(seen, left.min(RECHECK)).await;
    }
}
