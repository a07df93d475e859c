//! The cross-edge feed: every event the hub stored, from all edges, in an order a consumer can
//! follow with one cursor and never miss an event that committed late.
//!
//! # Why not a global identity column alone
//!
//! Numbers from a sequence are taken when a row is written, not when its transaction commits:
//! batch A takes ids 100..199, batch B 200..299, B commits first, a consumer reads up to 299
//! and moves its cursor there; then A commits, and its rows (below the cursor) are never read.
//!
//! # The order used: `(tx, feed_id)` below the oldest open transaction
//!
//! Each row records the id of the transaction that wrote it (`tx`, from
//! `pg_current_xact_id()`, 64 bits, never wraps) and a row number (`feed_id`). A read returns
//! rows ordered by `(tx, feed_id)` after the cursor, **only from transactions older than the
//! oldest transaction still open** (`pg_snapshot_xmin(pg_current_snapshot())`): every one of
//! those has committed or rolled back, and any transaction that commits later has a larger
//! id than every row returned, so it sorts after the cursor. Nothing is skipped; a batch shows
//! once the transactions begun before it have ended. The price: a transaction left open in
//! the database cluster (any database: an idle session `BEGIN`-ed by hand, a long report)
//! holds the feed back until it ends. Redelivered (dead-lettered) events appear when they are
//! stored, after events with higher sequence numbers; each item carries its `edge_id`,
//! `epoch` and `seq`.
//!
//! # The cursor
//!
//! `"<tx>.<feed_id>"`, two decimal numbers (`""` or absent: from the start). Opaque to
//! consumers: store `next` and send it back as `after_cursor`.
//!
//! # Waking consumers
//!
//! Each stored batch runs `pg_notify('zenedge_hub_events', '')` inside its transaction
//! (delivered at commit). One connection per hub process LISTENs and bumps a counter that the
//! long polls of `GET /v1/events?wait=` wait on; it reconnects with backoff when the database
//! goes away (and bumps the counter then, so waiting reads look again).

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::super::HubError;
use super::connect::{Resolved, connect_one};
use super::write::CHANNEL;
use super::{PgStore, db_error, sql, unsigned};

/// A position in the feed: after the row `feed_id` of transaction `tx`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeedCursor {
    pub tx: u64,
    pub feed_id: u64,
}

impl FeedCursor {
    /// Parses `"<tx>.<feed_id>"` (empty: the start).
    pub fn parse(text: &str) -> Result<FeedCursor, String> {
        if text.is_empty() {
            return Ok(FeedCursor::default());
        }
        let bad = || format!("after_cursor must be a cursor this hub gave (\"<tx>.<feed_id>\"), got {text:?}");
        let (tx, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(FeedCursor { tx: tx.parse().map_err(|_| bad())?, feed_id: id.parse().map_err(|_| bad())? })
    }
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.tx, self.feed_id)
    }
}

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub edge_id: String,
    pub epoch: u64,
    pub seq: u64,
    /// The envelope as the edge sent it.
    pub bytes: Vec<u8>,
    pub cursor: FeedCursor,
}

/// A page of the feed and the cursor to read on from (the given one when the page is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub items: Vec<FeedItem>,
    pub next: FeedCursor,
}

impl PgStore {
    /// Up to `limit` events after `after`, in feed order (see the module docs).
    pub async fn feed(&self, after: FeedCursor, limit: usize) -> Result<Feed, HubError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT edge_id, epoch, seq, envelope, tx, feed_id FROM hub_events
                 WHERE (tx, feed_id) > ($1, $2) AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 ORDER BY tx, feed_id LIMIT $3",
            )
            .await
            .map_err(db_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows =
            client.query(&statement, &[&sql(after.tx)?, &sql(after.feed_id)?, &limit]).await.map_err(db_error)?;
        let items: Vec<FeedItem> = rows
            .iter()
            .map(|r| FeedItem {
                edge_id: r.get(0),
                epoch: unsigned(r.get(1)),
                seq: unsigned(r.get(2)),
                bytes: r.get(3),
                cursor: FeedCursor { tx: unsigned(r.get(4)), feed_id: unsigned(r.get(5)) },
            })
            .collect();
        let next = items.last().map_or(after, |i| i.cursor);
        Ok(Feed { items, next })
    }
}

/// Keeps one connection LISTENing on the feed's channel and counts what arrives in `seen`,
/// until `stop`.
pub(super) async fn listen(resolved: Resolved, seen: watch::Sender<u64>, stop: CancellationToken) {
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        match listen_once(&resolved, &seen, &stop).await {
            Ok(()) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "the feed's notification connection is down; reconnecting");
                }
            }
        }
        // Waiting reads look again: notifications may have been lost meanwhile.
        seen.send_modify(|n| *n = n.wrapping_add(1));
        let wait = Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection's life: `Ok` on `stop`, `Err` when the connection failed.
async fn listen_once(resolved: &Resolved, seen: &watch::Sender<u64>, stop: &CancellationToken) -> Result<(), HubError> {
    let (client, mut driver) = connect_one(resolved).await?;
    let (messages, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let drive = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| driver.poll_message(cx)).await {
            let failed = message.is_err();
            if messages.send(message).is_err() || failed {
                break;
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(db_error)?;
        seen.send_modify(|n| *n = n.wrapping_add(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                message = inbox.recv() => match message {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => seen.send_modify(|n| *n = n.wrapping_add(1)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(db_error(e)),
                    None => return Err(HubError::Unavailable("the notification connection closed".into())),
                },
            }
        }
    }
    .await;
    drive.abort();
    result
}

#[cfg(test)]
#[path = "feed_tests.rs"]
mod tests;
