//! Which instance files may go, and the writer request that records their deletion.
//!
//! The deletion of a file is decided in the writer's transaction: its `InstanceStored` must
//! be at or below the sync cursor (the hub stored it) and at or below the bound the caller
//! passes (the cursor as the hub confirmed it in this process, see [`crate::retention`]), and
//! no `InstanceFileDeleted` may name the file yet. The caller unlinks the file only after that
//! commit returned, so a crash leaves at worst a file whose event says deleted
//! ([`deleted_files`] lists them for the start-up sweep), never a missing file the log still
//! counts on.

use jiff::Timestamp;

use crate::events::{Event, InstanceFileDeleted, NewEvent};
use crate::log::{Aggregate, AppendError, EVENTS, LogHandle, LogReader, META, ReadError, Storage, Txn, corrupt};
use crate::projections::tables::DELETED_FILES;
use crate::projections::{Projections, dicom};

/// An instance file old enough and synced: what the sweep asks the writer to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub instance_seq: u64,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub file_path: String,
}

/// One page of the scan for expired files.
#[derive(Debug, Clone, Default)]
pub struct ExpiredPage {
    pub files: Vec<Expired>,
    /// Every event up to here was examined and needs no second look (it is not an
    /// `InstanceStored`, or it is and was found expired): the next scan starts after it.
    pub examined: u64,
}

/// Scans up to `limit` events after `after` and at or below both the sync cursor and
/// `confirmed`; returns the `InstanceStored` events recorded at or before `cutoff` whose file is
/// not deleted yet. Stops at the first `InstanceStored` younger than `cutoff` (events are
/// recorded in order: what follows is younger too), so `examined` never passes a file still to
/// keep.
pub fn expired_files(
    reader: &LogReader,
    after: u64,
    cutoff: Timestamp,
    limit: usize,
    confirmed: u64,
) -> Result<ExpiredPage, ReadError> {
    let txn = reader.begin_read()?;
    let cursor = crate::sync::cursor::cursor_in(&txn.open_table(META).storage()?)?.min(confirmed);
    let events = txn.open_table(EVENTS).storage()?;
    let deleted = txn.open_table(DELETED_FILES).storage()?;
    let (t, h) = (reader.site().tenant_id.as_str(), reader.site().hospital_id.as_str());
    let mut page = ExpiredPage { files: Vec::new(), examined: after };
    if after >= cursor {
        return Ok(page);
    }
    for row in events.range(after + 1..=cursor).storage()?.take(limit) {
        let (k, v) = row.storage()?;
        let seq = k.value();
        let envelope = crate::events::decoded(seq, v.value())?;
        if let Event::InstanceStored(i) = envelope.event {
            if envelope.recorded_at > cutoff {
                break;
            }
            if deleted.get((t, h, i.file_path.as_str())).storage()?.is_none() {
                page.files.push(Expired {
                    instance_seq: seq,
                    sop_instance_uid: i.sop_instance_uid,
                    study_instance_uid: i.study_instance_uid,
                    file_path: i.file_path,
                });
            }
        }
        page.examined = seq;
    }
    Ok(page)
}

/// Every file an `InstanceFileDeleted` names (relative to the state directory).
pub fn deleted_files(reader: &LogReader) -> Result<Vec<String>, ReadError> {
    let txn = reader.begin_read()?;
    let table = txn.open_table(DELETED_FILES).storage()?;
    let (t, h) = (reader.site().tenant_id.as_str(), reader.site().hospital_id.as_str());
    let mut out = Vec::new();
    for row in table.range((t, h, "")..).storage()? {
        let (k, _) = row.storage()?;
        let (kt, kh, path) = k.value();
        if (kt, kh) != (t, h) {
            break;
        }
        out.push(path.to_owned());
    }
    Ok(out)
}

/// Appends an `InstanceFileDeleted` for each of `files` still synced (at or below the cursor
/// and `confirmed`) and not deleted; returns the ones recorded (their files may now be
/// unlinked), once durable.
pub async fn delete_files(
    log: &LogHandle<Projections>,
    files: Vec<Expired>,
    max_age: String,
    confirmed: u64,
) -> Result<Vec<Expired>, AppendError> {
    log.request((files, max_age, confirmed), apply_delete).await
}

fn apply_delete(
    t: &mut Txn<'_, '_, Projections>,
    (files, max_age, confirmed): (Vec<Expired>, String, u64),
) -> Result<Result<Vec<Expired>, AppendError>, redb::Error> {
    let cursor = {
        let meta = t.txn().open_table(META)?;
        let cursor = crate::sync::cursor::cursor_in(&meta).map_err(|e| match e {
            ReadError::Storage(e) => e,
            other => corrupt("meta", other),
        })?;
        cursor.min(confirmed)
    };
    let mut recorded = Vec::with_capacity(files.len());
    for file in files {
        if file.instance_seq > cursor || dicom::is_deleted(&mut t.tables, t.site, &file.file_path)? {
            continue;
        }
        let event = NewEvent::now(
            Aggregate { kind: "instance".into(), id: file.sop_instance_uid.clone() },
            Event::InstanceFileDeleted(Box::new(InstanceFileDeleted {
                sop_instance_uid: file.sop_instance_uid.clone(),
                study_instance_uid: file.study_instance_uid.clone(),
                file_path: file.file_path.clone(),
                instance_seq: file.instance_seq,
                reason: "retention".into(),
                max_age: max_age.clone(),
            })),
        );
        match t.append(&event)? {
            Ok(_) => recorded.push(file),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(recorded))
}
