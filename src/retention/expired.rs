//! Which instance files may go, and the writer request that records their deletion.
//!
//! The deletion of a file is decided in the writer's transaction: every required destination
//! must have confirmed holding the version its `InstanceStored` recorded (the `forwards`
//! projection, from `InstanceForwarded` and `InstancesCommitted`), and no
//! `InstanceFileDeleted` may name the file yet. The caller unlinks the file only after that
//! commit returned, so a crash leaves at worst a file whose event says deleted
//! ([`deleted_files`] lists them for the start-up sweep), never a missing file the log still
//! counts on.

use jiff::Timestamp;

use crate::events::{Event, InstanceFileDeleted, NewEvent};
use crate::log::{Aggregate, AppendError, EVENTS, LogHandle, LogReader, ReadError, Storage, Txn, decode_row};
use crate::projections::dicom::InstanceRow;
use crate::projections::tables::{DELETED_FILES, DICOM_INSTANCES, FORWARDS};
use crate::projections::{Projections, dicom, forward};

/// An instance file old enough and confirmed: what the sweep asks the writer to delete.
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
    /// Every event up to here needs no second look (it is not an `InstanceStored`, or its
    /// file is deleted or found expired and confirmed): later sweeps start after it. It stays
    /// before the first old file still waiting for a confirmation.
    pub examined: u64,
    /// The last event read: the sweep's next page starts after it.
    pub scanned: u64,
    /// The scan reached a file young enough to keep, or the log's head: the sweep is done.
    pub done: bool,
}

/// Scans up to `limit` events after `after`; returns the `InstanceStored` events recorded at
/// or before `cutoff` whose file is not deleted yet and that every one of `required` confirmed
/// holding (none, with `required` empty). Stops at the first `InstanceStored` younger than
/// `cutoff` (events are recorded in order: what follows is younger too).
pub fn expired_files(
    reader: &LogReader,
    after: u64,
    cutoff: Timestamp,
    limit: usize,
    required: &[String],
) -> Result<ExpiredPage, ReadError> {
    let txn = reader.begin_read()?;
    let events = txn.open_table(EVENTS).storage()?;
    let deleted = txn.open_table(DELETED_FILES).storage()?;
    let forwards = txn.open_table(FORWARDS).storage()?;
    let instances = txn.open_table(DICOM_INSTANCES).storage()?;
    let site = reader.site();
    let (t, h) = (site.tenant_id.as_str(), site.hospital_id.as_str());
    let mut page = ExpiredPage { files: Vec::new(), examined: after, scanned: after, done: false };
    let mut waiting = false;
    let mut read = 0;
    for row in events.range(after.saturating_add(1)..).storage()?.take(limit) {
        let (k, v) = row.storage()?;
        let seq = k.value();
        read += 1;
        let envelope = crate::events::decoded(seq, v.value())?;
        if let Event::InstanceStored(i) = envelope.event {
            if envelope.recorded_at > cutoff {
                page.done = true;
                return Ok(page);
            }
            let restored = match instances.get((t, h, i.sop_instance_uid.as_str())).storage()? {
                Some(row) => stored_again(&decode_row("dicom_instances", row.value())?, seq, &i.file_path),
                None => false,
            };
            if !restored && deleted.get((t, h, i.file_path.as_str())).storage()?.is_none() {
                if forward::confirmed_in(&forwards, site, seq, required)? {
                    page.files.push(Expired {
                        instance_seq: seq,
                        sop_instance_uid: i.sop_instance_uid,
                        study_instance_uid: i.study_instance_uid,
                        file_path: i.file_path,
                    });
                } else {
                    waiting = true;
                }
            }
        }
        page.scanned = seq;
        if !waiting {
            page.examined = seq;
        }
    }
    page.done = read < limit;
    Ok(page)
}

/// A later `InstanceStored` names the same file (it was deleted, then the same data set was
/// stored again): the file is that version's now, and its own confirmations decide.
fn stored_again(latest: &InstanceRow, seq: u64, file_path: &str) -> bool {
    latest.seq != seq && latest.file_path == file_path
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

/// Appends an `InstanceFileDeleted` for each of `files` that every one of `required`
/// confirmed and that is not deleted yet; returns the ones recorded (their files may now be
/// unlinked), once durable.
pub async fn delete_files(
    log: &LogHandle<Projections>,
    files: Vec<Expired>,
    max_age: String,
    required: Vec<String>,
) -> Result<Vec<Expired>, AppendError> {
    log.request((files, max_age, required), apply_delete).await
}

fn apply_delete(
    t: &mut Txn<'_, '_, Projections>,
    (files, max_age, required): (Vec<Expired>, String, Vec<String>),
) -> Result<Result<Vec<Expired>, AppendError>, redb::Error> {
    let mut recorded = Vec::with_capacity(files.len());
    for file in files {
        let latest = dicom::instance(&mut t.tables, t.site, &file.sop_instance_uid)?;
        if latest.is_some_and(|row| stored_again(&row, file.instance_seq, &file.file_path))
            || dicom::is_deleted(&mut t.tables, t.site, &file.file_path)?
            || !forward::confirmed_by_all(&mut t.tables, t.site, file.instance_seq, &required)?
        {
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
