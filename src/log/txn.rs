//! What one request sees inside the writer's transaction, the plumbing that carries a request
//! to the writer and its answer back, and what the layer above has the writer do with each
//! event it appends ([`Applier`]).
//!
//! A request is a function `fn(&mut Txn, Q) -> Result<Result<O, AppendError>, redb::Error>`
//! and its input, defined by the feature that owns it: the outer `Err` is a storage error
//! (fatal for the whole batch), the inner one a refusal of this request alone (disk reserve,
//! encoding). The answer is held until the batch's commit returned; if the commit fails, every
//! request of the batch is answered [`AppendError::Unavailable`] instead.

use jiff::Timestamp;
use redb::{ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::envelope::{EnvelopeRef, NewEvent, Payload, StoredEnvelope};
use super::keys::Keyring;
use super::reserve::human;
use super::store::EVENTS;
use crate::config::Site;
use crate::telemetry::Metrics;

/// Why an append was not done. Every variant means: nothing was stored, answer negatively.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("free disk space {} is below the reserve of {}", human(*.free), human(*.reserve))]
    DiskReserve { free: u64, reserve: u64 },
    #[error("the event log is not accepting writes (shutting down or failed)")]
    Unavailable,
    #[error("event could not be encoded: {0}")]
    Encode(String),
}

impl AppendError {
    /// Short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AppendError::DiskReserve { .. } => "disk_reserve",
            AppendError::Unavailable => "unavailable",
            AppendError::Encode(_) => "encode",
        }
    }
}

/// What the layer above the engine does inside the writer's transaction: how every appended
/// event changes the tables derived from the log, and what ends a batch. Given to
/// [`crate::log::Store::start`]; the engine calls it and knows nothing else of it.
pub trait Applier: Send + 'static {
    /// The payload the log stores in each envelope's `data`.
    type Event: Payload;
    /// What the applier keeps for one transaction: its tables, opened on first use, and rows
    /// written back at the end. Requests reach it as [`Txn::tables`].
    type Tables<'t>;
    /// The applier's state for the write transaction `txn`.
    fn tables<'t>(&self, txn: &'t WriteTransaction) -> Self::Tables<'t>;
    /// Applies one event, in the transaction that appends it.
    fn apply(&self, tables: &mut Self::Tables<'_>, meta: &Meta<'_>, event: &Self::Event) -> Result<(), redb::Error>;
    /// Ends a batch that appended or changed something, before its commit; `last_seq` is the
    /// log's last sequence number then.
    fn finish(&self, tables: &mut Self::Tables<'_>, site: &Site, last_seq: u64) -> Result<(), redb::Error>;
}

/// What an appended event brings besides its payload.
#[derive(Debug, Clone, Copy)]
pub struct Meta<'a> {
    pub site: &'a Site,
    pub seq: u64,
    pub event_id: Uuid,
    pub recorded_at: Timestamp,
}

impl<'a> Meta<'a> {
    pub fn tenant(&self) -> &'a str {
        &self.site.tenant_id
    }

    pub fn hospital(&self) -> &'a str {
        &self.site.hospital_id
    }
}

/// How a request is applied in the writer's transaction.
pub type ApplyFn<Q, O, A> = fn(&mut Txn<'_, '_, A>, Q) -> Result<Result<O, AppendError>, redb::Error>;

/// A request as the writer handles it, whatever its input and outcome types.
pub(crate) trait Request<A: Applier>: Send {
    /// Applies the request; `Err` only for a storage error, which fails the batch.
    fn apply(&mut self, t: &mut Txn<'_, '_, A>) -> Result<(), redb::Error>;
    /// The refusal this request will be answered with, if any (for the metrics).
    fn refusal(&self) -> Option<&AppendError>;
    /// Sends the outcome (after the commit returned).
    fn answer(self: Box<Self>);
    /// Answers "unavailable" (the commit failed, or the writer is closing).
    fn fail(self: Box<Self>);
}

/// A typed request: input, how to apply it, and where its answer goes.
pub(crate) struct Job<Q, O, A: Applier> {
    pub input: Option<Q>,
    pub apply: ApplyFn<Q, O, A>,
    pub outcome: Option<Result<O, AppendError>>,
    pub reply: oneshot::Sender<Result<O, AppendError>>,
}

impl<Q: Send, O: Send, A: Applier> Request<A> for Job<Q, O, A> {
    fn apply(&mut self, t: &mut Txn<'_, '_, A>) -> Result<(), redb::Error> {
        if let Some(input) = self.input.take() {
            self.outcome = Some((self.apply)(t, input)?);
        }
        Ok(())
    }

    fn refusal(&self) -> Option<&AppendError> {
        self.outcome.as_ref().and_then(|o| o.as_ref().err())
    }

    fn answer(self: Box<Self>) {
        // A caller that went away (connection closed) does not need its answer.
        let _ = self.reply.send(self.outcome.unwrap_or(Err(AppendError::Unavailable)));
    }

    fn fail(self: Box<Self>) {
        let _ = self.reply.send(Err(AppendError::Unavailable));
    }
}

/// Where the writer's time comes from (tests inject one to cross months in a moment).
pub type Clock = std::sync::Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The batch's transaction as one request sees it.
#[allow(missing_debug_implementations)] // holds redb's open tables, which have no `Debug`
pub struct Txn<'a, 't, A: Applier> {
    pub site: &'a Site,
    pub metrics: &'a Metrics,
    /// `Err` when free space is below the reserve: requests that add data must refuse.
    pub reserve: Result<(), AppendError>,
    /// The time recorded on every event of this batch.
    pub recorded_at: Timestamp,
    /// The applier's tables in this transaction.
    pub tables: A::Tables<'t>,
    applier: &'a A,
    /// Seals the values of events that carry patient data (`None`: sealing off).
    keyring: Option<&'a Keyring>,
    txn: &'t WriteTransaction,
    events: Option<Table<'t, u64, &'static [u8]>>,
    next_seq: &'a mut u64,
    /// Something was written (else the transaction is aborted instead of committed).
    pub dirty: bool,
}

impl<'a, 't, A: Applier> Txn<'a, 't, A> {
    pub(crate) fn new(
        txn: &'t WriteTransaction,
        site: &'a Site,
        metrics: &'a Metrics,
        reserve: Result<(), AppendError>,
        next_seq: &'a mut u64,
        recorded_at: Timestamp,
        applier: &'a A,
    ) -> Self {
        Txn {
            site,
            metrics,
            reserve,
            recorded_at,
            tables: applier.tables(txn),
            applier,
            keyring: None,
            txn,
            events: None,
            next_seq,
            dirty: false,
        }
    }

    /// The same transaction sealing the values of events that carry patient data with
    /// `keyring` (`None`: sealing off).
    pub(crate) fn sealing(self, keyring: Option<&'a Keyring>) -> Self {
        Txn { keyring, ..self }
    }

    /// The write transaction itself, for tables the applier does not keep (the sync's state).
    pub fn txn(&self) -> &'t WriteTransaction {
        self.txn
    }

    /// The sequence number the next appended event gets.
    pub fn next_seq(&self) -> u64 {
        *self.next_seq
    }

    /// Appends one event at the next sequence number (gapless: a failed batch is fatal) and
    /// has the applier apply it.
    pub fn append(&mut self, event: &NewEvent<A::Event>) -> Result<Result<u64, AppendError>, redb::Error> {
        let seq = *self.next_seq;
        let bytes = match encode(self.site, event, seq, self.recorded_at) {
            Ok(bytes) => self.seal(seq, &event.event, bytes)?,
            Err(e) => return Ok(Err(e)),
        };
        self.insert(seq, &bytes, event)?;
        Ok(Ok(seq))
    }

    /// The envelope of event `seq` as this transaction sees it (`None` when there is none); a
    /// value that does not decode is corruption.
    pub fn event(&mut self, seq: u64) -> Result<Option<StoredEnvelope>, redb::Error> {
        let events = self.events_table()?;
        let Some(stored) = events.get(seq)? else { return Ok(None) };
        StoredEnvelope::from_bytes(stored.value()).map(Some).map_err(|e| corrupt("events", format!("event {seq}: {e}")))
    }

    /// `stored` (the value of event `seq`) sealed under the data key of `event`'s subject, in
    /// this transaction (the key is created here if new); as it is when sealing is off or the
    /// event carries no patient data.
    fn seal(&self, seq: u64, event: &A::Event, stored: Vec<u8>) -> Result<Vec<u8>, redb::Error> {
        let Some(keyring) = self.keyring else { return Ok(stored) };
        match keyring.data_key(self.txn, self.site, event.subject())? {
            Some((id, key)) => super::value::seal(seq, &id, &key, &stored),
            None => Ok(stored),
        }
    }

    fn events_table(&mut self) -> Result<&mut Table<'t, u64, &'static [u8]>, redb::Error> {
        if self.events.is_none() {
            self.events = Some(self.txn.open_table(EVENTS)?);
        }
        Ok(self.events.as_mut().expect("just opened"))
    }

    fn insert(&mut self, seq: u64, bytes: &[u8], event: &NewEvent<A::Event>) -> Result<(), redb::Error> {
        self.events_table()?.insert(seq, bytes)?;
        let meta = Meta { site: self.site, seq, event_id: event.event_id, recorded_at: self.recorded_at };
        self.applier.apply(&mut self.tables, &meta, &event.event)?;
        *self.next_seq += 1;
        self.dirty = true;
        Ok(())
    }

    /// Has the applier end the batch (called by the writer before a commit).
    pub(crate) fn finish(&mut self) -> Result<(), redb::Error> {
        let last = *self.next_seq - 1;
        self.applier.finish(&mut self.tables, self.site, last)
    }
}

/// Plain appends: all events or none (a refusal of one refuses the request).
pub(crate) fn apply_events<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    events: Vec<NewEvent<A::Event>>,
) -> Result<Result<Vec<u64>, AppendError>, redb::Error> {
    if let Err(e) = &t.reserve {
        return Ok(Err(e.clone()));
    }
    let first = t.next_seq();
    let encoded: Result<Vec<Vec<u8>>, AppendError> =
        events.iter().enumerate().map(|(i, e)| encode(t.site, e, first + i as u64, t.recorded_at)).collect();
    let encoded = match encoded {
        Ok(encoded) => encoded,
        Err(e) => return Ok(Err(e)),
    };
    let mut seqs = Vec::with_capacity(encoded.len());
    for (bytes, event) in encoded.into_iter().zip(&events) {
        let seq = t.next_seq();
        let bytes = t.seal(seq, &event.event, bytes)?;
        seqs.push(seq);
        t.insert(seq, &bytes, event)?;
    }
    Ok(Ok(seqs))
}

/// Serializes the envelope of `e` at `seq`, in its stored (compressed) form.
fn encode<E: Payload>(site: &Site, e: &NewEvent<E>, seq: u64, recorded_at: Timestamp) -> Result<Vec<u8>, AppendError> {
    EnvelopeRef {
        seq,
        event_id: e.event_id,
        event_type: e.event.event_type(),
        event_version: e.event.event_version(),
        occurred_at: e.occurred_at,
        recorded_at,
        tenant_id: &site.tenant_id,
        hospital_id: &site.hospital_id,
        edge_id: &site.edge_id,
        aggregate: &e.aggregate,
        correlation_id: e.correlation_id,
        causation_id: e.causation_id,
        data: &e.event,
    }
    .encode(e.event.size_hint())
    .map(super::value::encode)
    .map_err(|err| AppendError::Encode(err.to_string()))
}

/// A row of `table` (msgpack of `row`) in the stored form of event values: compressed with
/// this thread's dictionary when that is smaller ([`super::value::encode`]).
pub fn encode_row<T: serde::Serialize>(table: &str, row: &T) -> Result<Vec<u8>, redb::Error> {
    let bytes = rmp_serde::to_vec_named(row).map_err(|e| corrupt(table, e))?;
    Ok(super::value::encode(bytes))
}

/// A row of `table` as [`encode_row`] stored it (or as plain msgpack, as rows were before); one
/// that does not decode is corruption.
pub fn read_row<T: serde::de::DeserializeOwned>(table: &str, stored: &[u8]) -> Result<T, redb::Error> {
    let plain = super::value::plain(stored).map_err(|e| corrupt(table, e))?;
    rmp_serde::from_slice(&plain).map_err(|e| corrupt(table, e))
}

/// A value that does not decode is corruption: the batch fails (and the daemon restarts).
pub fn corrupt(table: &str, e: impl std::fmt::Display) -> redb::Error {
    redb::StorageError::Corrupted(format!("{table}: {e}")).into()
}
