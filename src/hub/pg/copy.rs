//! A batch into `hub_events` with a binary COPY, the rows encoded on the blocking pool while
//! the connection streams the ones already encoded: reading each envelope's columns and
//! encoding its row (the hub's share of the work) overlaps PostgreSQL's inserts instead of
//! alternating with them (figures in `BENCHMARKS.md`).
//!
//! The stream is PostgreSQL's binary COPY format: the signature `PGCOPY\n\377\r\n\0`, two
//! 32-bit zeros (flags, header extension), then per row a 16-bit field count and each field
//! as a 32-bit length (-1 for NULL) and its binary value, and a 16-bit -1 at the end.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use deadpool_postgres::Transaction;
use futures_util::SinkExt;
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::super::HubError;
use super::{columns, db_error, sql};
use crate::sync::wire::Received;

const COPY: &str = "COPY hub_events (edge_id, epoch, seq, event_id, event_type, tenant_id, hospital_id, occurred_at, \
                    recorded_at, aggregate_type, aggregate_id, patient_ids, accession, envelope, tx) FROM STDIN BINARY";

const TYPES: [Type; 15] = [
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT_ARRAY,
    Type::TEXT,
    Type::BYTEA,
    Type::INT8,
];

/// Bytes of encoded rows handed to the connection at a time.
const CHUNK: usize = 256 << 10;

/// Encoded chunks waiting for the connection, at most.
const IN_FLIGHT: usize = 4;

/// Encodes the rows of `envelopes` in binary COPY format, handing each chunk of about
/// [`CHUNK`] bytes to `send` (which answers false when the receiver is gone).
fn encode(
    edge_id: &str,
    epoch: i64,
    xact: i64,
    envelopes: &[Received],
    mut send: impl FnMut(Bytes) -> bool,
) -> Result<(), HubError> {
    let mut buf = BytesMut::with_capacity(CHUNK + (64 << 10));
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
    for e in envelopes {
        let c = columns(&e.bytes);
        let seq = sql(e.head.seq)?;
        let row: [&(dyn ToSql + Sync); 15] = [
            &edge_id,
            &epoch,
            &seq,
            &e.head.event_id,
            &e.head.event_type,
            &c.tenant_id,
            &c.hospital_id,
            &c.occurred_at,
            &c.recorded_at,
            &c.aggregate_type,
            &c.aggregate_id,
            &c.patient_ids,
            &c.accession,
            &e.bytes,
            &xact,
        ];
        buf.put_i16(TYPES.len() as i16);
        for (value, ty) in row.iter().zip(&TYPES) {
            let at = buf.len();
            buf.put_i32(0);
            let length = match value
                .to_sql_checked(ty, &mut buf)
                .map_err(|err| HubError::Postgres(format!("cannot encode event {} for COPY: {err}", e.head.seq)))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(buf.len() - at - 4)
                    .map_err(|_| HubError::Postgres(format!("event {} has a field over 2 GiB", e.head.seq)))?,
            };
            buf[at..at + 4].copy_from_slice(&length.to_be_bytes());
        }
        if buf.len() >= CHUNK && !send(buf.split().freeze()) {
            return Ok(());
        }
    }
    buf.put_i16(-1);
    send(buf.freeze());
    Ok(())
}

/// The envelopes into `hub_events` (one binary COPY in the batch's transaction).
pub(super) async fn copy_events(
    tx: &Transaction<'_>,
    edge_id: &str,
    epoch: u64,
    envelopes: Arc<Vec<Received>>,
) -> Result<(), HubError> {
    if envelopes.is_empty() {
        return Ok(());
    }
    // The feed's `tx`, read once for the batch rather than computed by the column's default
    // for every row.
    let xact: i64 = tx.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await.map_err(db_error)?.get(0);
    let epoch = sql(epoch)?;
    let (chunks, mut encoded) = tokio::sync::mpsc::channel::<Bytes>(IN_FLIGHT);
    let edge = edge_id.to_owned();
    let encoder = tokio::task::spawn_blocking(move || {
        encode(&edge, epoch, xact, &envelopes, |chunk| chunks.blocking_send(chunk).is_ok())
    });
    let sink = tx.copy_in::<_, Bytes>(COPY).await.map_err(db_error)?;
    let mut sink = std::pin::pin!(sink);
    while let Some(chunk) = encoded.recv().await {
        sink.send(chunk).await.map_err(db_error)?;
    }
    // Every chunk was sent: the encoder is done; an error of its means a partial stream,
    // which must not be finished (dropping the sink aborts the COPY).
    encoder.await.map_err(|e| HubError::Task(e.to_string()))??;
    sink.as_mut().finish().await.map_err(db_error)?;
    Ok(())
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
