//! The forwarding projection: per stored instance version and destination, what the
//! destination answered and whether it confirmed holding the instance. Derived from
//! `InstanceForwarded` and `InstancesCommitted` only; retention reads it (a file goes only
//! once every required destination confirmed it), and so does a study's view.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Tables;
use super::tables::ForwardKey;
use crate::config::Site;
use crate::events::{ForwardStatus, InstanceForwarded, InstancesCommitted};
use crate::log::{ReadError, Storage, corrupt, decode_row};

/// The value of a `forwards` row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRow {
    /// The destination's last answer to a store of this version (`None`: only a commitment
    /// named it).
    pub status: Option<ForwardStatus>,
    /// The last `InstanceForwarded` of this version to this destination.
    pub forwarded_seq: Option<u64>,
    /// The event that confirmed the destination holds it (`InstanceForwarded` with
    /// `confirmed`, or `InstancesCommitted`); cleared by a later failed commitment.
    pub confirmed_seq: Option<u64>,
    /// The last commitment answer named it failed, with this Failure Reason (0 if none given).
    pub commit_failed: Option<u16>,
}

/// A row's key, borrowed: (tenant, hospital, instance seq, destination).
type Key<'a> = (&'a str, &'a str, u64, &'a str);

fn get(t: &mut Tables<'_>, key: Key<'_>) -> Result<ForwardRow, redb::Error> {
    match t.forwards()?.get(key)? {
        Some(bytes) => rmp_serde::from_slice(bytes.value()).map_err(|e| corrupt("forwards", e)),
        None => Ok(ForwardRow::default()),
    }
}

fn put(t: &mut Tables<'_>, key: Key<'_>, row: &ForwardRow) -> Result<(), redb::Error> {
    let bytes = rmp_serde::to_vec_named(row).map_err(|e| corrupt("forwards", e))?;
    t.forwards()?.insert(key, bytes.as_slice())?;
    Ok(())
}

/// `InstanceForwarded`: the destination's answer; with `confirmed`, its confirmation.
pub(crate) fn apply_forwarded(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    f: &InstanceForwarded,
) -> Result<(), redb::Error> {
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), f.instance_seq, f.destination.as_str());
    let mut row = get(t, key)?;
    row.status = Some(f.status);
    row.forwarded_seq = Some(seq);
    if f.confirmed && f.status == ForwardStatus::Stored {
        row.confirmed_seq = Some(seq);
    }
    put(t, key, &row)
}

/// `InstancesCommitted`: committed instances are confirmed, failed ones are not (any more).
pub(crate) fn apply_committed(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    c: &InstancesCommitted,
) -> Result<(), redb::Error> {
    let (tenant, hospital) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    for i in &c.committed {
        let key = (tenant, hospital, i.instance_seq, c.destination.as_str());
        let mut row = get(t, key)?;
        (row.confirmed_seq, row.commit_failed) = (Some(seq), None);
        put(t, key, &row)?;
    }
    for i in &c.failed {
        let key = (tenant, hospital, i.instance_seq, c.destination.as_str());
        let mut row = get(t, key)?;
        (row.confirmed_seq, row.commit_failed) = (None, Some(i.failure_reason.unwrap_or(0)));
        put(t, key, &row)?;
    }
    Ok(())
}

/// Whether every one of `destinations` confirmed the instance version stored at
/// `instance_seq` (false for an empty list: nobody confirmed anything), in the writer's
/// transaction.
pub(crate) fn confirmed_by_all(
    t: &mut Tables<'_>,
    site: &Site,
    instance_seq: u64,
    destinations: &[String],
) -> Result<bool, redb::Error> {
    confirmed_in(t.forwards()?, site, instance_seq, destinations).map_err(|e| match e {
        ReadError::Storage(e) => e,
        other => corrupt("forwards", other),
    })
}

/// [`confirmed_by_all`] over the table as a read transaction (or the writer) sees it.
pub(crate) fn confirmed_in(
    table: &impl ReadableTable<ForwardKey, &'static [u8]>,
    site: &Site,
    instance_seq: u64,
    destinations: &[String],
) -> Result<bool, ReadError> {
    if destinations.is_empty() {
        return Ok(false);
    }
    for destination in destinations {
        let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), instance_seq, destination.as_str());
        let Some(bytes) = table.get(key).storage()? else { return Ok(false) };
        let row: ForwardRow = decode_row("forwards", bytes.value())?;
        if row.confirmed_seq.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every destination's row for the instance version stored at `instance_seq`, by name.
pub(crate) fn rows_of(
    table: &impl ReadableTable<ForwardKey, &'static [u8]>,
    site: &Site,
    instance_seq: u64,
) -> Result<Vec<(String, ForwardRow)>, ReadError> {
    let (t, h) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let mut out = Vec::new();
    for entry in table.range((t, h, instance_seq, "")..).storage()? {
        let (key, value) = entry.storage()?;
        let (kt, kh, seq, destination) = key.value();
        if (kt, kh, seq) != (t, h, instance_seq) {
            break;
        }
        out.push((destination.to_owned(), decode_row("forwards", value.value())?));
    }
    Ok(out)
}
