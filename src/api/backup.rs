//! `GET /api/v1/backup`: an online, consistent copy of the state directory, as a tar stream
//! (what `zenedge backup` reads; `curl … | tar x` works too).
//!
//! An operator action (scope `operator`), recorded in the audit trail (DICOM Instances
//! Accessed, naming the client) before the answer starts.
//! First the database is copied from one read transaction into `.backup/<uuid>.redb` in the
//! state directory ([`crate::operator::snapshot::snapshot`]); ingest goes on meanwhile. Only
//! then does the answer start (so a failed copy is a 5xx, not a cut stream), with headers
//! `X-Zenedge-Last-Seq` and `X-Zenedge-Events`. The tar holds `zenedge.redb` (the copy),
//! then every instance file an `InstanceStored` of the copy names, under its path relative
//! to the state directory (`instances/…`), in sequence order. Files are listed from the copy,
//! a page at a time, so memory stays bounded whatever the size of the log, and the tar is
//! produced on the blocking pool into a bounded channel the response drains. A file that
//! cannot be read is left out and logged at ERROR (the client checks every file against the
//! events and reports it); any other failure cuts the stream, which the client notices. The
//! copy is deleted when the stream ends, and any left by a crash at the next start.
//!
//! The copy needs about the database's size in free space: when that would take the disk
//! below the reserve, the request is refused with 507 instead of starving intake; and one
//! backup runs at a time (409 while another streams).

use std::io;
use std::path::Path;

use axum::Extension;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::tar_stream::{self, Sender};
use super::{ApiError, ApiState, Caller};
use crate::log::{LogReader, is_relative_inside};
use crate::operator::snapshot::{self, SnapshotSummary};

/// Events read per page while listing the instance files.
const PAGE: usize = 4096;

pub(super) async fn backup(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    let Ok(permit) = state.backups.clone().try_acquire_owned() else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: "a backup or a retention sweep is already running".into(),
        });
    };
    let state_dir = state.database_path.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into());
    check_space(&state).await?;
    let copy = state_dir.join(snapshot::BACKUP_DIR).join(format!("{}.redb", uuid::Uuid::new_v4()));
    let (ready_tx, ready) = oneshot::channel::<Result<SnapshotSummary, String>>();
    let (sender, body) = tar_stream::channel();
    let reader = state.reader.clone();
    // One blocking task copies, streams and cleans up, whether or not the client stays.
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let proceed = match make_copy(&reader, &copy) {
            Ok(summary) => ready_tx.send(Ok(summary)).is_ok(),
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                false
            }
        };
        if proceed {
            let failed = sender.clone();
            match write_tar(sender, &state_dir, &copy) {
                Ok(files) => tracing::info!(files, "backup streamed"),
                Err(e) => {
                    tracing::warn!(error = %e, "backup stream ended early");
                    failed.fail(e);
                }
            }
        }
        let _ = std::fs::remove_file(&copy);
    });
    let summary = ready.await.map_err(ApiError::internal)?.map_err(ApiError::internal)?;
    // The copy leaves the edge only once its record is durable (503 otherwise, and the stream
    // is dropped with its copy).
    let details =
        vec![("last_seq".to_owned(), summary.last_seq.to_string()), ("events".to_owned(), summary.events.to_string())];
    let record = crate::audit::kinds::instances_accessed(
        &state.edge_id,
        &super::audit::requester(&extensions),
        "/api/v1/backup",
        "backup: a copy of the database and of every instance file",
        details,
        jiff::Timestamp::now(),
    );
    super::audit::recorded(&state, vec![record]).await?;
    tracing::info!(
        last_seq = summary.last_seq,
        events = summary.events,
        client = caller.client,
        "backup: database copied; streaming it"
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::HeaderName::from_static("x-zenedge-last-seq"), summary.last_seq.to_string()),
            (header::HeaderName::from_static("x-zenedge-events"), summary.events.to_string()),
        ],
        body,
    )
        .into_response())
}

/// 507 when a copy of the database would take the free space below the reserve.
async fn check_space(state: &ApiState) -> Result<(), ApiError> {
    let (disk, path) = (state.disk.clone(), state.database_path.clone());
    let (space, size) = tokio::task::spawn_blocking(move || (disk.space(), std::fs::metadata(&path).map(|m| m.len())))
        .await
        .map_err(ApiError::internal)?;
    let (space, size) = (space.map_err(ApiError::internal)?, size.map_err(ApiError::internal)?);
    if space.free.saturating_sub(size) < space.reserve {
        return Err(ApiError {
            status: StatusCode::INSUFFICIENT_STORAGE,
            message: format!(
                "a backup needs about {size} bytes in the state directory for its copy of the database; \
                 that would take free space ({}) below the disk reserve ({})",
                space.free, space.reserve
            ),
        });
    }
    Ok(())
}

/// The database copy at `target` (its directory created if needed).
fn make_copy(reader: &LogReader, target: &Path) -> Result<SnapshotSummary, String> {
    let dir = target.parent().expect("the copy is in a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    snapshot::snapshot(reader, target).map_err(|e| e.to_string())
}

/// Writes the tar (database copy, then the instance files it names); returns how many
/// instance files went in.
fn write_tar(out: Sender, state_dir: &Path, copy: &Path) -> io::Result<u64> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_path_with_name(copy, "zenedge.redb")?;
    let db = redb::ReadOnlyDatabase::open(copy).map_err(io::Error::other)?;
    let (mut after, mut files) = (0, 0);
    loop {
        let (page, next) = snapshot::instance_files(&db, after, PAGE).map_err(io::Error::other)?;
        for file in page {
            let path = state_dir.join(&file.path);
            if !is_relative_inside(&file.path) {
                tracing::error!(
                    seq = file.seq,
                    "backup: an InstanceStored names a path outside the state directory; left out"
                );
                continue;
            }
            match tar.append_path_with_name(&path, &file.path) {
                Ok(()) => files += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::error!(seq = file.seq, path = %file.path, "backup: instance file missing; left out");
                }
                Err(e) => return Err(e),
            }
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    tar.into_inner()?.finish()?;
    Ok(files)
}
