//! `GET /api/v1/patients/{patient_id}/export`: everything the edge holds of one patient, as a
//! tar stream (a data subject's access request; `zenedge export` writes it to a file).
//!
//! Needs the scopes `read` and `export`. The patient is the id asked for and every id merged
//! into it (ADT^A40); its events are those [`crate::events::subject`] attributes to it. The
//! tar holds, in sequence order:
//! * `events/<seq>.json`: every event of the patient, in the read API's shape;
//! * `hl7/<seq>.hl7`: each HL7 message exactly as received (the sender's bytes and charset);
//! * `dicom/<seq>.dcm`: each stored instance's Part 10 file, byte for byte;
//! * `manifest.json` last: the patient's ids, the edge, the time, the last seq scanned, and
//!   the path, size and SHA-256 of every file above; an instance whose file retention already
//!   removed is listed under `missing` with the reason.
//!
//! The scan starts on the blocking pool; the answer (and its Export audit record, committed
//! first: 503 otherwise) waits for the patient's first event, so an unknown patient is a 404,
//! not an empty archive. A failure after the answer started cuts the stream.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::tar_stream::{self, Sender};
use super::{ApiError, ApiState, Caller};
use crate::config::Scope;
use crate::events::{Envelope, Event};
use crate::log::{ReadError, is_relative_inside};
use crate::projections::views::patients;

/// The longest patient id accepted (HL7 CX.1 and DICOM LO are far shorter).
const MAX_ID: usize = 256;

/// The archive's last entry.
#[derive(Debug, Serialize)]
struct Manifest {
    patient_id: String,
    /// The id asked for and every id merged into it.
    patient_ids: Vec<String>,
    tenant_id: String,
    hospital_id: String,
    edge_id: String,
    exported_at: jiff::Timestamp,
    /// Events up to this seq were scanned.
    last_seq: u64,
    events: u64,
    files: Vec<FileEntry>,
    missing: Vec<Missing>,
}

#[derive(Debug, Serialize)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

#[derive(Debug, Serialize)]
struct Missing {
    path: String,
    seq: u64,
    reason: String,
}

pub(super) async fn export(
    State(state): State<ApiState>,
    axum::Extension(caller): axum::Extension<Caller>,
    UrlPath(patient_id): UrlPath<String>,
    extensions: axum::http::Extensions,
) -> Result<Response, ApiError> {
    if !caller.scopes.contains(Scope::Read) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "a patient's export needs the scopes read and export; this client lacks read".into(),
        });
    }
    if patient_id.trim().is_empty() || patient_id.len() > MAX_ID || patient_id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "the patient id must be 1 to {MAX_ID} bytes without control characters"
        )));
    }
    let reader = state.reader.clone();
    let id = patient_id.clone();
    let patient_ids = tokio::task::spawn_blocking(move || patients::merged_into(&reader, &id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let (sender, body) = tar_stream::channel();
    let (found_tx, found) = oneshot::channel::<Result<bool, String>>();
    let archive = Archive {
        state_dir: state.database_path.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into()),
        manifest: Manifest {
            patient_id: patient_id.clone(),
            patient_ids: patient_ids.clone(),
            tenant_id: state.reader.site().tenant_id.clone(),
            hospital_id: state.reader.site().hospital_id.clone(),
            edge_id: state.edge_id.clone(),
            exported_at: jiff::Timestamp::now(),
            last_seq: 0,
            events: 0,
            files: Vec::new(),
            missing: Vec::new(),
        },
        found: Some(found_tx),
    };
    let reader = state.reader.clone();
    tokio::task::spawn_blocking(move || {
        let failed = sender.clone();
        if let Err(e) = archive.write(&reader, sender) {
            tracing::warn!(error = %e, "patient export ended early");
            failed.fail(io::Error::other(e));
        }
    });
    match found.await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(ApiError::not_found(format!("no data of patient {patient_id:?} on this edge"))),
        Ok(Err(e)) => return Err(ApiError::internal(e)),
        Err(_) => return Err(ApiError::internal("the export stopped before it began")),
    }
    let path = format!("/api/v1/patients/{patient_id}/export");
    let who = super::audit::requester(&extensions);
    let record = crate::audit::kinds::data_export(&state.edge_id, &who, &path, &patient_ids, jiff::Timestamp::now());
    super::audit::recorded(&state, vec![record]).await?;
    tracing::info!(client = caller.client, ids = patient_ids.len(), "patient export: streaming");
    let name: String =
        patient_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"patient-{name}.tar\"")),
        ],
        body,
    )
        .into_response())
}

/// The archive being written.
struct Archive {
    state_dir: PathBuf,
    manifest: Manifest,
    /// Told whether the patient has any event, once that is known.
    found: Option<oneshot::Sender<Result<bool, String>>>,
}

/// Why the archive could not be completed.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Archive {
    fn write(mut self, reader: &crate::log::LogReader, out: Sender) -> Result<(), String> {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        let ids = self.manifest.patient_ids.clone();
        let result = patients::patient_events(reader, &ids, |envelope| self.add(&mut tar, &envelope));
        match (result, self.found.take()) {
            (Err(e), Some(found)) => {
                let _ = found.send(Err(e.to_string()));
                return Ok(());
            }
            (Err(e), None) => return Err(e.to_string()),
            (Ok(()), Some(found)) => {
                let _ = found.send(Ok(false));
                return Ok(());
            }
            (Ok(()), None) => {}
        }
        let manifest = serde_json::to_vec_pretty(&self.manifest).map_err(|e| e.to_string())?;
        append(&mut tar, "manifest.json", &manifest).map_err(|e| e.to_string())?;
        tar.into_inner().and_then(Sender::finish).map_err(|e| e.to_string())
    }

    fn add(&mut self, tar: &mut tar::Builder<Sender>, envelope: &Envelope) -> Result<(), ExportError> {
        if let Some(found) = self.found.take() {
            // The client sees nothing before the handler has recorded the export.
            let _ = found.send(Ok(true));
        }
        let seq = envelope.seq;
        self.manifest.last_seq = seq;
        self.manifest.events += 1;
        let json = serde_json::to_vec_pretty(&envelope.json_view()).map_err(io::Error::other)?;
        self.file(tar, format!("events/{seq:020}.json"), &json)?;
        match &envelope.event {
            Event::Hl7MessageReceived(m) => self.file(tar, format!("hl7/{seq:020}.hl7"), &m.raw)?,
            Event::InstanceStored(i) => self.instance(tar, seq, &i.file_path)?,
            _ => {}
        }
        Ok(())
    }

    fn file(&mut self, tar: &mut tar::Builder<Sender>, path: String, bytes: &[u8]) -> io::Result<()> {
        append(tar, &path, bytes)?;
        let sha256 = crate::ids::hex(&Sha256::digest(bytes));
        self.manifest.files.push(FileEntry { path, size: bytes.len() as u64, sha256 });
        Ok(())
    }

    /// The Part 10 file of the instance stored at `seq`, hashed as it streams.
    fn instance(&mut self, tar: &mut tar::Builder<Sender>, seq: u64, file_path: &str) -> io::Result<()> {
        let path = format!("dicom/{seq:020}.dcm");
        let file = if is_relative_inside(file_path) {
            std::fs::File::open(self.state_dir.join(file_path))
        } else {
            Err(io::Error::other("its recorded path is outside the state directory"))
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let reason = match e.kind() {
                    io::ErrorKind::NotFound => "the file is no longer on this edge (retention removed it)".to_owned(),
                    _ => format!("the file could not be read: {e}"),
                };
                tracing::warn!(seq, %reason, "patient export: an instance file is left out");
                self.manifest.missing.push(Missing { path, seq, reason });
                return Ok(());
            }
        };
        let size = file.metadata()?.len();
        let mut header = header(size);
        let mut hashing = Hashing { inner: file.take(size), hash: Sha256::new() };
        tar.append_data(&mut header, &path, &mut hashing)?;
        let sha256 = crate::ids::hex(&hashing.hash.finalize());
        self.manifest.files.push(FileEntry { path, size, sha256 });
        Ok(())
    }
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn append(tar: &mut tar::Builder<Sender>, path: &str, bytes: &[u8]) -> io::Result<()> {
    tar.append_data(&mut header(bytes.len() as u64), path, bytes)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}
