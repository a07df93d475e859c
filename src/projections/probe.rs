//! Timing of the writer's matching lookup, for `zenedge-load match-lookup`: what the writer
//! reads to decide the pairs of an accession when an order or a study arrives.

use std::time::{Duration, Instant};

use redb::Database;

use super::Tables;
use super::orders;
use crate::config::Site;
use crate::log::Meta;

/// Runs the matching lookup for each accession in one write transaction (as the writer
/// does; aborted afterwards, nothing changes) and returns how long each took, with the
/// number of (study, order) candidates it found.
#[doc(hidden)]
pub fn time_match_lookups(
    db: &Database,
    site: &Site,
    accessions: &[String],
) -> Result<(Vec<Duration>, u64), redb::Error> {
    let txn = db.begin_write()?;
    let mut timings = Vec::with_capacity(accessions.len());
    let mut candidates = 0u64;
    {
        let mut t = Tables::new(&txn);
        let m = Meta { site, seq: 0, event_id: uuid::Uuid::nil(), recorded_at: jiff::Timestamp::now() };
        for accession in accessions {
            let started = Instant::now();
            let studies = orders::under(t.studies_by_accession()?, &m, accession)?;
            for order_id in orders::under(t.orders_by_accession()?, &m, accession)? {
                let Some(order) = orders::order(&mut t, &m, &order_id)? else { continue };
                if order.cancelled {
                    continue;
                }
                for study in &studies {
                    candidates += u64::from(!orders::is_pair(&mut t, &m, study, &order.order_id)?);
                }
            }
            timings.push(started.elapsed());
        }
    }
    txn.abort()?;
    Ok((timings, candidates))
}
