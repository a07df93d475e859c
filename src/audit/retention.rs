//! Pruning the trail: records older than `audit.retention` go, from the front, never one the
//! syslog collector has not been handed (the forwarder's cursor bounds it when forwarding is
//! on), never one the hub has not stored (the sync's audit cursor bounds it when the sync is
//! on) and never the newest record (whose id the next record's follows, so ids never repeat).

use jiff::Timestamp;
use redb::ReadableTable;

use super::record::StoredRecord;
use super::trail::AUDIT_TRAIL;
use crate::log::{AppendError, Applier, LogHandle, Txn, corrupt};

/// Records removed per request at most (the writer's transaction stays short).
const CHUNK: usize = 10_000;

/// The highest id retention may remove: the lowest cursor of the places the trail goes to
/// (`None`: that place is off), every id when it goes nowhere.
pub fn bound(syslog: Option<u64>, hub: Option<u64>) -> u64 {
    syslog.into_iter().chain(hub).min().unwrap_or(u64::MAX)
}

/// Removes the records recorded before `before` with an id at most `upto`; returns how many.
pub async fn prune<A: Applier>(log: &LogHandle<A>, before: Timestamp, upto: u64) -> Result<u64, AppendError> {
    let mut removed = 0;
    loop {
        let n = log.request((before, upto), apply::<A>).await?;
        removed += n;
        if n < CHUNK as u64 {
            return Ok(removed);
        }
    }
}

fn apply<A: Applier>(
    t: &mut Txn<'_, '_, A>,
    (before, upto): (Timestamp, u64),
) -> Result<Result<u64, AppendError>, redb::Error> {
    let mut table = t.txn().open_table(AUDIT_TRAIL)?;
    let Some(last) = table.last()?.map(|(k, _)| k.value()) else { return Ok(Ok(0)) };
    let mut doomed = Vec::new();
    for row in table.range(..last.min(upto.saturating_add(1)))?.take(CHUNK) {
        let (key, value) = row?;
        let row = crate::log::value::plain(value.value()).map_err(|e| corrupt("audit_trail", e))?;
        let stored: StoredRecord = rmp_serde::from_slice(&row).map_err(|e| corrupt("audit_trail", e))?;
        if stored.recorded_at >= before {
            break;
        }
        doomed.push(key.value());
    }
    for id in &doomed {
        table.remove(*id)?;
    }
    if !doomed.is_empty() {
        t.dirty = true;
    }
    Ok(Ok(doomed.len() as u64))
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
