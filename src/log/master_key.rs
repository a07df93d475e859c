//! The master key: 256 bits in a file outside the database (`store.master_key_file`), which
//! wraps every data key the database holds ([`super::keys`]).
//!
//! The file holds the key as 64 hexadecimal digits and a newline. It must be readable by its
//! owner only: a file group or others may read (or write) is refused, as is one that is
//! missing (once the database holds keys made under it), unreadable or not 64 hex digits.
//! `zenedge serve` creates it (mode 0400) when it is absent and the database holds no key
//! yet, so a first start needs no preparation; in production it belongs off the data disk
//! (`appliance/provision.sh` creates it in the configuration directory).
//!
//! Two keys are derived from it (HMAC-SHA256 under a label): the key that wraps data keys, and
//! the key that turns a patient's identity into the id of its data key, so the database never
//! holds a patient id in clear as a key. A fingerprint (a third derivation) is recorded in the
//! database, so a wrong key file is refused at open instead of making every value unreadable.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Why the master key file cannot be used (a configuration problem: exit 78).
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "master key file {path} is missing, but the database holds data keys made under a master key: \
         restore the key file (creating a new one would leave every sealed value unreadable)"
    )]
    Missing { path: PathBuf },
    #[error("master key file {path} has mode {mode:o}: it must be readable by its owner only (chmod 0400)")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("master key file {path} cannot be read: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("master key file {path} is garbled: it must hold exactly 64 hexadecimal digits")]
    Garbled { path: PathBuf },
    #[error("master key file {path} cannot be created: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error(
        "master key file {path} is not the key this database's data keys were made under (fingerprint \
         {found}, the database expects {expected}): point store.master_key_file at the right file"
    )]
    WrongKey { path: PathBuf, found: String, expected: String },
}

/// The master key (never printed).
pub struct MasterKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut bytes = [0; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random source works");
        MasterKey { bytes }
    }

    /// The key in `path`, checked (owner-only mode, 64 hex digits).
    pub fn load(path: &Path) -> Result<MasterKey, MasterKeyError> {
        let unreadable = |source| MasterKeyError::Unreadable { path: path.to_owned(), source };
        let meta = fs::metadata(path).map_err(unreadable)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(MasterKeyError::Permissions { path: path.to_owned(), mode });
        }
        let text = fs::read_to_string(path).map_err(unreadable)?;
        parse_hex(text.trim_end_matches('\n'))
            .map(|bytes| MasterKey { bytes })
            .ok_or_else(|| MasterKeyError::Garbled { path: path.to_owned() })
    }

    /// Writes this key to the new file `path` (mode 0400, fsync'ed with its directory).
    pub fn create(&self, path: &Path) -> Result<(), MasterKeyError> {
        let failed = |source| MasterKeyError::Create { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(path).map_err(failed)?;
        file.write_all(format!("{}\n", hex(&self.bytes)).as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        super::files::fsync_dir(dir).map_err(failed)
    }

    /// HMAC-SHA256 of `label` under the master key: the keys derived from it.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, label);
        let mut out = [0; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// What the database records to recognise this key (it reveals nothing of it).
    pub fn fingerprint(&self) -> String {
        hex(&self.derive(b"zenedge master key fingerprint v1")[..16])
    }
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 bytes from exactly 64 hex digits.
fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}
