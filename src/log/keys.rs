//! Data keys: a random 256-bit key per patient (and per message that names no patient), stored
//! wrapped under the master key ([`super::master_key`]) in the engine's own table `data_keys`.
//!
//! # Contract
//!
//! * **Table.** `data_keys: key id (16 bytes) → nonce (12) ‖ AES-256-GCM(data key) ‖ tag (16)`,
//!   the wrap bound to its key id (associated data), so a wrapped key moved to another row does
//!   not open. Nothing else anywhere holds a data key: destroying a patient's key is deleting
//!   its one row ([`destroy`]); every value sealed under it is then unreadable, in the file,
//!   in backups and in pages redb freed but has not reused.
//! * **Key ids.** A patient's key id is HMAC-SHA256, under a key derived from the master key,
//!   of the database's random salt (`meta.data_key_salt`), the tenant, the hospital and the
//!   patient id, cut to 16 bytes (salt and the master key's fingerprint are kept by
//!   [`super::store`]): the patient id is never stored in clear as a key, and the
//!   same patient in another database has another id. A message with no patient gets a random
//!   id and its own key.
//! * **Durability.** A data key is created in the write transaction of the first event sealed
//!   under it, so it is durable before that event is acknowledged, or neither is stored.
//! * **Reading.** Readers need nothing but the stored bytes: every database opened with a
//!   master key registers its keyring process-wide ([`register`]); a key id is looked up in a
//!   bounded cache of unwrapped keys, then in the `data_keys` table of each open database.
//! * **Rotation.** A new master key means unwrapping every row with the old key and wrapping
//!   it with the new one, and recording the new fingerprint, in one transaction: the data
//!   itself is never re-encrypted (README, "Patient data at rest").

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock, Weak};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::master_key::MasterKey;
use crate::config::Site;

/// `key id -> wrapped data key`.
pub const DATA_KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data_keys");
/// Bytes of a key id.
pub const KEY_ID_LEN: usize = 16;
/// The id of a data key.
pub type KeyId = [u8; KEY_ID_LEN];
/// A data key.
pub type DataKey = [u8; 32];

/// Unwrapped keys kept in memory; beyond this the cache starts again empty.
const CACHE_MAX: usize = 1 << 18;

/// Whose data an event's payload carries, so the engine knows what key to seal it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// No patient data: stored unsealed.
    Clear,
    /// The patient with this id (within the site's tenant and hospital).
    Patient(&'a str),
    /// Patient data but no patient id: a key of this message's own.
    Message,
}

/// What one database's data keys are made and opened with.
pub struct Keyring {
    wrap: [u8; 32],
    ids: hmac::Key,
    salt: [u8; 16],
    db: Weak<Database>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(***)")
    }
}

/// Every open database's keyring (dropped databases are skipped and pruned).
static RINGS: LazyLock<RwLock<Vec<Arc<Keyring>>>> = LazyLock::new(Default::default);
/// Unwrapped data keys by id.
static CACHE: LazyLock<RwLock<HashMap<KeyId, DataKey>>> = LazyLock::new(Default::default);

/// Registers the keyring of `db` under `master`, whose patient key ids use `salt`, for readers;
/// returns it for the writer.
pub(crate) fn register(db: &Arc<Database>, master: &MasterKey, salt: [u8; 16]) -> Arc<Keyring> {
    let ring = Arc::new(Keyring {
        wrap: master.derive(b"zenedge data key wrap v1"),
        ids: hmac::Key::new(hmac::HMAC_SHA256, &master.derive(b"zenedge data key id v1")),
        salt,
        db: Arc::downgrade(db),
    });
    let mut rings = RINGS.write().unwrap_or_else(|e| e.into_inner());
    rings.retain(|r| r.db.strong_count() > 0);
    rings.push(ring.clone());
    ring
}

/// A new random salt for a database's patient key ids.
pub(crate) fn new_salt() -> Result<[u8; 16], redb::Error> {
    random()
}

/// The salt `text` (32 hex digits), as recorded in `meta`.
pub(crate) fn parse_salt(text: &str) -> Option<[u8; 16]> {
    let mut out = [0; 16];
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Keyring {
    /// The key id of patient `patient_id` of `site`.
    pub fn patient_key_id(&self, site: &Site, patient_id: &str) -> KeyId {
        let mut ctx = hmac::Context::with_key(&self.ids);
        ctx.update(&self.salt);
        for part in [&site.tenant_id, &site.hospital_id] {
            ctx.update(part.as_bytes());
            ctx.update(&[0]);
        }
        ctx.update(patient_id.as_bytes());
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&ctx.sign().as_ref()[..KEY_ID_LEN]);
        id
    }

    /// The data key `subject`'s values are sealed under in `txn`, created (and written, in
    /// `txn`) if it has none; `None` for [`Subject::Clear`].
    pub fn data_key(
        &self,
        txn: &WriteTransaction,
        site: &Site,
        subject: Subject<'_>,
    ) -> Result<Option<(KeyId, DataKey)>, redb::Error> {
        let id = match subject {
            Subject::Clear => return Ok(None),
            Subject::Patient(patient) => self.patient_key_id(site, patient),
            Subject::Message => random()?,
        };
        if let Some(key) = cached(&id) {
            return Ok(Some((id, key)));
        }
        let mut table = txn.open_table(DATA_KEYS)?;
        if let Some(wrapped) = table.get(id.as_slice())? {
            let key = unwrap(&self.wrap, &id, wrapped.value()).ok_or_else(|| {
                redb::Error::from(redb::StorageError::Corrupted("data_keys: a data key does not unwrap".into()))
            })?;
            remember(id, key);
            return Ok(Some((id, key)));
        }
        let key: DataKey = random()?;
        table.insert(id.as_slice(), wrap(&self.wrap, &id, &key)?.as_slice())?;
        remember(id, key);
        Ok(Some((id, key)))
    }
}

/// Deletes the data key `id` from `txn`'s database (and forgets it): every value sealed under
/// it is unreadable from then on. `true` when there was one.
pub fn destroy(txn: &WriteTransaction, id: &KeyId) -> Result<bool, redb::Error> {
    let removed = txn.open_table(DATA_KEYS)?.remove(id.as_slice())?.is_some();
    CACHE.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    Ok(removed)
}

/// The data key `id`, from the cache or the `data_keys` table of an open database; `None`
/// when no open database holds it (destroyed, or sealed under another master key).
pub(crate) fn find(id: &KeyId) -> Option<DataKey> {
    if let Some(key) = cached(id) {
        return Some(key);
    }
    let rings: Vec<Arc<Keyring>> = RINGS.read().unwrap_or_else(|e| e.into_inner()).clone();
    for ring in rings {
        let Some(db) = ring.db.upgrade() else { continue };
        let Ok(txn) = db.begin_read() else { continue };
        let Ok(table) = txn.open_table(DATA_KEYS) else { continue };
        let Ok(Some(wrapped)) = table.get(id.as_slice()) else { continue };
        if let Some(key) = unwrap(&ring.wrap, id, wrapped.value()) {
            remember(*id, key);
            return Some(key);
        }
    }
    None
}

fn no_random() -> redb::Error {
    redb::StorageError::Corrupted("data_keys: the system random source failed".into()).into()
}

fn cached(id: &KeyId) -> Option<DataKey> {
    CACHE.read().unwrap_or_else(|e| e.into_inner()).get(id).copied()
}

fn remember(id: KeyId, key: DataKey) {
    let mut cache = CACHE.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.insert(id, key);
}

fn random<const N: usize>() -> Result<[u8; N], redb::Error> {
    let mut out = [0; N];
    SystemRandom::new().fill(&mut out).map_err(|_| no_random())?;
    Ok(out)
}

/// AES-256-GCM under `key` of `plain`, bound to `aad`: nonce ‖ ciphertext ‖ tag.
pub(crate) fn aead_seal(key: &[u8; 32], aad: &[u8], plain: &[u8], out: &mut Vec<u8>) -> Result<(), redb::Error> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 256-bit key"));
    let start = out.len();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let mut body = out.split_off(start + NONCE_LEN);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .map_err(|_| redb::Error::from(redb::StorageError::Corrupted("data_keys: sealing failed".into())))?;
    out.extend_from_slice(&body);
    Ok(())
}

/// The plain text of `sealed` (nonce ‖ ciphertext ‖ tag) under `key` and `aad`; `None` when it
/// does not authenticate.
pub(crate) fn aead_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let mut body = body.to_vec();
    let len = key.open_in_place(nonce, Aad::from(aad), &mut body).ok()?.len();
    body.truncate(len);
    Some(body)
}

fn wrap(wrap: &[u8; 32], id: &KeyId, key: &DataKey) -> Result<Vec<u8>, redb::Error> {
    let mut out = Vec::with_capacity(60);
    aead_seal(wrap, id, key, &mut out)?;
    Ok(out)
}

fn unwrap(wrap: &[u8; 32], id: &KeyId, wrapped: &[u8]) -> Option<DataKey> {
    aead_open(wrap, id, wrapped)?.try_into().ok()
}
