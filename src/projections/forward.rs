//! The forwarding projection: per stored instance version and destination, what the
//! destination answered and whether it confirmed holding the instance; and the Storage
//! Commitment requests still awaiting their report. Derived from `InstanceForwarded` and
//! `InstancesCommitted` only; retention reads it (a file goes only once every required
//! destination confirmed it), and so do a study's view, the forwarding (which asks again for an
//! overdue report) and the SCP that takes the reports.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Tables;
use super::tables::{FORWARD_COMMITMENTS, ForwardKey};
use crate::config::Site;
use crate::events::{ForwardStatus, InstanceForwarded, InstancesCommitted};
use crate::log::{LogReader, Meta, ReadError, Storage, corrupt, decode_row};

/// A Storage Commitment request awaiting its report (a `forward_commitments` row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommitment {
    pub destination: String,
    pub study_instance_uid: String,
    /// When the first of its `InstanceForwarded` was recorded (µs since the epoch).
    pub recorded_at_us: i64,
    /// The instances it names: SOP Instance UID and the seq of the `InstanceStored`.
    pub instances: Vec<(String, u64)>,
}

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

/// `InstanceForwarded`: the destination's answer; with `confirmed`, its confirmation; with a
/// commitment transaction, the instance joins that pending request.
pub(crate) fn apply_forwarded(t: &mut Tables<'_>, m: &Meta<'_>, f: &InstanceForwarded) -> Result<(), redb::Error> {
    let key = (m.tenant(), m.hospital(), f.instance_seq, f.destination.as_str());
    let mut row = get(t, key)?;
    row.status = Some(f.status);
    row.forwarded_seq = Some(m.seq);
    if f.confirmed && f.status == ForwardStatus::Stored {
        row.confirmed_seq = Some(m.seq);
    }
    put(t, key, &row)?;
    let Some(transaction) = f.commitment_transaction_uid.as_deref().filter(|_| f.status == ForwardStatus::Stored)
    else {
        return Ok(());
    };
    let key = (m.tenant(), m.hospital(), transaction);
    let mut pending = match t.forward_commitments()?.get(key)? {
        Some(bytes) => rmp_serde::from_slice(bytes.value()).map_err(|e| corrupt("forward_commitments", e))?,
        None => PendingCommitment {
            destination: f.destination.clone(),
            study_instance_uid: f.study_instance_uid.clone(),
            recorded_at_us: m.recorded_at.as_microsecond(),
            instances: Vec::new(),
        },
    };
    pending.instances.push((f.sop_instance_uid.clone(), f.instance_seq));
    let bytes = rmp_serde::to_vec_named(&pending).map_err(|e| corrupt("forward_commitments", e))?;
    t.forward_commitments()?.insert(key, bytes.as_slice())?;
    Ok(())
}

/// The pending request of `transaction_uid`, if its report has not come yet.
pub fn pending_commitment(reader: &LogReader, transaction_uid: &str) -> Result<Option<PendingCommitment>, ReadError> {
    let txn = reader.begin_read()?;
    let table = txn.open_table(FORWARD_COMMITMENTS).storage()?;
    let site = reader.site();
    let key = (site.tenant_id.as_str(), site.hospital_id.as_str(), transaction_uid);
    match table.get(key).storage()? {
        Some(bytes) => Ok(Some(decode_row("forward_commitments", bytes.value())?)),
        None => Ok(None),
    }
}

/// Every pending request of `destination`, with its transaction UID, oldest first.
pub fn pending_commitments(
    reader: &LogReader,
    destination: &str,
) -> Result<Vec<(String, PendingCommitment)>, ReadError> {
    let txn = reader.begin_read()?;
    let table = txn.open_table(FORWARD_COMMITMENTS).storage()?;
    let site = reader.site();
    let (t, h) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let mut out = Vec::new();
    for entry in table.range((t, h, "")..).storage()? {
        let (key, value) = entry.storage()?;
        let (kt, kh, transaction) = key.value();
        if (kt, kh) != (t, h) {
            break;
        }
        let row: PendingCommitment = decode_row("forward_commitments", value.value())?;
        if row.destination == destination {
            out.push((transaction.to_owned(), row));
        }
    }
    out.sort_by_key(|(_, row)| row.recorded_at_us);
    Ok(out)
}

/// `InstancesCommitted`: committed instances are confirmed, failed ones are not (any more).
pub(crate) fn apply_committed(
    t: &mut Tables<'_>,
    site: &Site,
    seq: u64,
    c: &InstancesCommitted,
) -> Result<(), redb::Error> {
    let (tenant, hospital) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    t.forward_commitments()?.remove((tenant, hospital, c.transaction_uid.as_str()))?;
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
