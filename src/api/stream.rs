//! `GET /api/v1/events/stream?after=SEQ`: the log as Server-Sent Events, live.
//!
//! Each event is `id: <seq>`, `event: <event_type>`, `data: <the event's JSON, as the
//! /api/v1/events list gives it>`, in seq order, starting after:
//!
//! 1. the `Last-Event-ID` header, when the client sends one (a reconnecting `EventSource`
//!    sends the id of the last event it received, and reconnects to the URL it first
//!    opened: letting the header win means a stream opened with `?after=0` resumes where it
//!    broke off instead of replaying the log);
//! 2. else the `after` query parameter;
//! 3. else the current end of the log (only what is committed from now on).
//!
//! The stream catches up by paging through the log, then waits on the writer's committed
//! sequence number (a `watch` channel the writer updates after each commit), so a new event
//! goes out as soon as it is durable, without polling. Keep-alive comments go out every
//! 15 s while nothing happens. The stream ends when the daemon shuts down, so open streams
//! never hold up a graceful shutdown; a client reconnects with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ApiError, ApiState, params};
use crate::events::Envelope;
use crate::log::LogReader;

/// Events read from the log at a time while catching up.
const PAGE: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamParams {
    after: Option<String>,
}

/// The stream, from the starting point the module doc describes; 400 for a malformed
/// `after` or `Last-Event-ID`.
pub(super) async fn events(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let p = params::query(query)?;
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| ApiError::bad_request("Last-Event-ID must be a sequence number"))?;
            // An empty id is how a client says it has none.
            Some(text.trim())
                .filter(|t| !t.is_empty())
                .map(|t| params::number("Last-Event-ID", Some(t), 0))
                .transpose()?
        }
    };
    let explicit = p.after.as_deref().map(|a| params::number("after", Some(a), 0)).transpose()?;
    let committed = state.writer.committed.subscribe();
    let after = last_event_id.or(explicit).unwrap_or_else(|| *committed.borrow());
    let tail = Tail {
        reader: state.reader.clone(),
        after,
        pending: VecDeque::new(),
        committed,
        shutdown: state.shutdown.clone(),
    };
    let stream = futures_util::stream::unfold(tail, |mut tail| async move {
        let envelope = tail.next().await?;
        Some((Ok(sse_event(&envelope)), tail))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// One log event as an SSE event.
fn sse_event(envelope: &Envelope) -> Event {
    Event::default()
        .id(envelope.seq.to_string())
        .event(envelope.event_type())
        .data(serde_json::to_string(&envelope.json_view()).unwrap_or_default())
}

/// The reading end of one stream.
struct Tail {
    reader: LogReader,
    /// The seq of the last event handed out (or the starting point).
    after: u64,
    /// Read but not yet handed out.
    pending: VecDeque<Envelope>,
    committed: watch::Receiver<u64>,
    shutdown: CancellationToken,
}

impl Tail {
    /// The next event, waiting for it to be committed; `None` ends the stream (shutdown, or
    /// the log cannot be read).
    async fn next(&mut self) -> Option<Envelope> {
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            if let Some(envelope) = self.pending.pop_front() {
                self.after = envelope.seq;
                return Some(envelope);
            }
            // Mark the current value seen before comparing: a commit after this line wakes
            // `changed()` below, so none is missed.
            let last = *self.committed.borrow_and_update();
            if last > self.after && self.read_page().await? > 0 {
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                changed = self.committed.changed() => changed.ok()?,
            }
        }
    }

    /// Reads the next page of the log into `pending`; returns how many events it held.
    async fn read_page(&mut self) -> Option<usize> {
        let (reader, after) = (self.reader.clone(), self.after);
        let read = tokio::task::spawn_blocking(move || crate::events::after(&reader, after, PAGE));
        let page = tokio::select! {
            _ = self.shutdown.cancelled() => return None,
            page = read => page,
        };
        match page {
            Ok(Ok(page)) => {
                let n = page.items.len();
                self.pending.extend(page.items);
                Some(n)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, after, "event stream cannot read the log; closing it");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, after, "event stream read task failed; closing it");
                None
            }
        }
    }
}
