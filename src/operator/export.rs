//! `zenedge export --patient ID --to FILE`: a patient's data export from the running daemon
//! (`GET /api/v1/patients/{id}/export`, see `src/api/export.rs`) written to a tar file.
//!
//! The archive is written to `FILE.part`, fsync'ed, then read back and checked against its
//! own manifest (every file listed is there with its size and SHA-256, nothing unlisted);
//! only a complete, checked archive is renamed to FILE. FILE must not exist.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::ExitCode;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

/// Characters of a patient id sent as they are in the URL path (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// What an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub patient_ids: Vec<String>,
    pub events: u64,
    pub hl7_messages: u64,
    pub dicom_files: u64,
    /// Instances whose files were no longer on the edge.
    pub missing: u64,
    pub bytes: u64,
}

/// `zenedge export`: exit 0 for a complete, checked archive; 1 otherwise; 78 for a bad config.
pub fn run_command(config: &Path, patient: &str, to: &Path) -> ExitCode {
    let config = match crate::cli::load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let daemon = super::Daemon::of(&config);
    if let Err(code) = daemon.require_token("export", "a patient's export") {
        return code;
    }
    match export(daemon, patient, to) {
        Ok(s) => {
            println!(
                "export of patient {patient} (ids {}) in {}: {} events, {} HL7 messages, {} DICOM files, {}",
                s.patient_ids.join(", "),
                to.display(),
                s.events,
                s.hl7_messages,
                s.dicom_files,
                bytesize::ByteSize(s.bytes)
            );
            if s.missing > 0 {
                println!("{} instance files were no longer on this edge (see manifest.json, `missing`)", s.missing);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zenedge export: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exports `patient` from the daemon at `addr` into the new file `to`.
pub fn export(addr: impl Into<super::Daemon>, patient: &str, to: &Path) -> Result<ExportSummary, String> {
    if to.exists() {
        return Err(format!("{} exists; name a new file", to.display()));
    }
    let daemon: super::Daemon = addr.into();
    let url = daemon.url(&format!("/api/v1/patients/{}/export", utf8_percent_encode(patient, UNRESERVED)));
    let response = daemon.authorized(daemon.agent(None).get(&url)).call().map_err(|e| daemon.unreachable(&e))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    if status != 200 {
        let text = body.with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        return Err(super::error_text(&daemon, status, &text));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".part");
    let partial = std::path::PathBuf::from(partial);
    let result = (|| {
        let mut file = File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
        let bytes = io::copy(&mut body.as_reader(), &mut file)
            .and_then(|n| file.sync_all().map(|()| n))
            .map_err(|e| format!("the export stream broke off: {e}"))?;
        let mut summary = check(File::open(&partial).map_err(|e| e.to_string())?)?;
        summary.bytes = bytes;
        std::fs::rename(&partial, to).map_err(|e| e.to_string())?;
        let dir = to.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        super::fsync_dir(dir).map_err(|e| e.to_string())?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Reads an export archive back and checks it against its manifest (the last entry).
pub fn check(archive: impl Read) -> Result<ExportSummary, String> {
    let mut found: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest = None;
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("the archive is unreadable: {e}"))?;
        let name = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(format!("{name} follows the manifest, which must be the last entry"));
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
        if name == "manifest.json" {
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("manifest.json is not JSON: {e}"))?;
            manifest = Some(value);
        } else {
            found.insert(name, (bytes.len() as u64, crate::ids::hex(&Sha256::digest(&bytes))));
        }
    }
    let manifest = manifest.ok_or("the archive has no manifest.json: it is incomplete")?;
    let listed = manifest["files"].as_array().ok_or("manifest.json lists no files")?;
    let mut summary = ExportSummary {
        patient_ids: manifest["patient_ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        events: 0,
        hl7_messages: 0,
        dicom_files: 0,
        missing: manifest["missing"].as_array().map_or(0, |m| m.len() as u64),
        bytes: 0,
    };
    for file in listed {
        let path = file["path"].as_str().ok_or("a manifest entry has no path")?;
        let (size, sha256) =
            found.remove(path).ok_or_else(|| format!("{path} is in the manifest, not in the archive"))?;
        if Some(size) != file["size"].as_u64() || Some(sha256.as_str()) != file["sha256"].as_str() {
            return Err(format!("{path} differs from its manifest entry (size or SHA-256)"));
        }
        let counter = match path.split('/').next() {
            Some("events") => &mut summary.events,
            Some("hl7") => &mut summary.hl7_messages,
            _ => &mut summary.dicom_files,
        };
        *counter += 1;
    }
    if let Some(extra) = found.keys().next() {
        return Err(format!("{extra} is in the archive but not in its manifest"));
    }
    Ok(summary)
}
