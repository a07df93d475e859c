//! The PostgreSQL store's audit records (`hub_audit`): a page is one `INSERT … ON CONFLICT DO
//! NOTHING` (one statement, so one transaction, durable when it returns), so a page sent twice,
//! or to two hubs at once, stores each record once.

use deadpool_postgres::GenericClient;
use jiff::Timestamp;

use super::super::HubError;
use super::{PgStore, db_error, sql, unsigned};
use crate::sync::wire_audit::ReceivedRecord;

impl PgStore {
    /// Stores the records of `edge_id` the hub does not hold yet; returns how many were new.
    pub async fn store_audit(&self, edge_id: &str, records: &[ReceivedRecord]) -> Result<u64, HubError> {
        let ids = records.iter().map(|r| sql(r.head.id)).collect::<Result<Vec<i64>, _>>()?;
        let at: Vec<Timestamp> = records.iter().map(|r| r.head.recorded_at).collect();
        let bytes: Vec<&[u8]> = records.iter().map(|r| r.bytes.as_slice()).collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO hub_audit (edge_id, id, recorded_at, record)
                 SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::bytea[])
                 ON CONFLICT (edge_id, id) DO NOTHING",
            )
            .await
            .map_err(db_error)?;
        client.execute(&statement, &[&edge_id, &ids, &at, &bytes]).await.map_err(db_error)
    }

    /// Up to `limit` records of `edge_id` with `id > after`, ascending, as sent.
    pub async fn audit_page(&self, edge_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, HubError> {
        if after >= i64::MAX as u64 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT id, record FROM hub_audit WHERE edge_id = $1 AND id > $2 ORDER BY id LIMIT $3")
            .await
            .map_err(db_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client.query(&statement, &[&edge_id, &sql(after)?, &limit]).await.map_err(db_error)?;
        Ok(rows.iter().map(|r| (unsigned(r.get(0)), r.get::<_, Vec<u8>>(1))).collect())
    }
}
