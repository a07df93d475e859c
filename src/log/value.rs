//! How an event's envelope is stored in the `events` table: compressed, behind a header that
//! names the format and the dictionary it needs.
//!
//! # Format
//!
//! * **Plain** (every value written before schema 6, and any value compression would not
//!   shrink): the msgpack envelope itself. It starts with a msgpack map marker.
//! * **Compressed**: `0xC1` (the one byte msgpack never uses, so no plain value starts with
//!   it), a format byte (`1` = one zstd frame), the dictionary id as an unsigned LEB128
//!   number (`0` = no dictionary; otherwise one of the file's trained dictionaries,
//!   [`super::dictionary`]), then the zstd frame, which records its content size.
//! * **Sealed**: `0xC1`, format byte `2`, the event's sequence number (8 bytes, little-endian),
//!   the id of the patient's data key it is sealed under ([`super::keys`], 16 bytes), then
//!   AES-256-GCM: a random nonce (12 bytes), the ciphertext, the tag (16 bytes). The associated
//!   data is the header (marker, format, sequence number, key id): a value copied to another
//!   sequence number, or given another key id, does not open, and a value read by its sequence
//!   number ([`decode`]) must name that number. The plain text is the value as it would be
//!   stored unsealed (plain or compressed): sealing comes after compression, and the plain text
//!   is never itself sealed. A truncated header, a key no open database holds (destroyed, or
//!   another master key's) and a ciphertext that does not authenticate are each a
//!   [`ValueFault`].
//!
//! Dictionaries are registered process-wide by id ([`register`], [`lookup`]) when a file that
//! holds them is opened, so readers need nothing but the stored bytes.
//!
//! Readers see the plain envelope whatever the stored form ([`decode`]), so everything above
//! the engine (projections, the API, rebuild, the sync to the hub) sees the same bytes as
//! before. Decompression is bounded: a frame must declare its content size, at most
//! [`MAX_PLAIN_BYTES`], and is decompressed into a buffer of exactly that size; a value that
//! does not decompress, declares no size, or names a format or dictionary this binary does not
//! know is a [`CorruptValue`], never a panic. Values larger than [`MAX_PLAIN_BYTES`] are
//! stored plain.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use super::keys::{KEY_ID_LEN, KeyId};
use sha2::{Digest, Sha256};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The first byte of a compressed value (msgpack's "never used" marker).
pub const MARK: u8 = 0xC1;
/// Format byte: one zstd frame.
pub const FORMAT_ZSTD: u8 = 1;
/// Format byte: sealed under a data key ([`seal`]).
pub const FORMAT_SEALED: u8 = 2;
/// The largest envelope stored compressed; a compressed value may declare no more.
pub const MAX_PLAIN_BYTES: usize = 64 << 20;
/// zstd's level for event values, with or without a dictionary.
pub const LEVEL: i32 = 3;

/// Envelopes this small are stored plain (the header and frame would not pay).
const MIN_COMPRESSED: usize = 64;

/// Why a stored value could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueFault {
    #[error("the header is truncated")]
    Truncated,
    #[error("unknown value format {0}")]
    UnknownFormat(u8),
    #[error("it names dictionary {0}, which this file does not hold")]
    UnknownDictionary(u32),
    #[error("the compressed frame declares no content size")]
    NoContentSize,
    #[error("the compressed frame declares {0} bytes, more than a value may hold ({MAX_PLAIN_BYTES})")]
    TooLarge(u64),
    #[error("it does not decompress: {0}")]
    Zstd(String),
    #[error("it is sealed under a data key no open database holds (destroyed, or another master key's)")]
    UnknownKey,
    #[error("the sealed value does not authenticate (altered, or not sealed under the key it names)")]
    Unauthentic,
    #[error("it was sealed for event {0}, not for this one")]
    Misplaced(u64),
    #[error("a sealed value holds another sealed value")]
    Nested,
}

/// A stored event value that cannot be read: corruption, reported with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq}: the stored value is corrupt: {fault}")]
pub struct CorruptValue {
    pub seq: u64,
    pub fault: ValueFault,
}

/// A dictionary ready for use: its bytes digested once for compressing and decompressing.
pub struct Dictionary {
    pub id: u32,
    pub bytes: Vec<u8>,
    pub(crate) encoder: EncoderDictionary<'static>,
    pub(crate) decoder: DecoderDictionary<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").field("id", &self.id).field("bytes", &self.bytes.len()).finish()
    }
}

/// Dictionaries of every file this process opened, by id. They are few (one per adoption)
/// and live as long as the process: values of any open file may name them.
static REGISTRY: LazyLock<RwLock<HashMap<u32, &'static Dictionary>>> = LazyLock::new(Default::default);

/// The id of the dictionary `bytes`: the first four bytes of its SHA-256, never 0 (0 names
/// "no dictionary").
pub fn id_of(bytes: &[u8]) -> u32 {
    let digest = Sha256::digest(bytes);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1)
}

/// The registered dictionary `bytes` (registering it if new).
pub fn register(bytes: &[u8]) -> &'static Dictionary {
    let id = id_of(bytes);
    if let Some(found) = lookup(id) {
        return found;
    }
    let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    registry.entry(id).or_insert_with(|| {
        Box::leak(Box::new(Dictionary {
            id,
            bytes: bytes.to_vec(),
            encoder: EncoderDictionary::copy(bytes, LEVEL),
            decoder: DecoderDictionary::copy(bytes),
        }))
    })
}

/// The dictionary `id`, when a file this process opened holds it.
pub fn lookup(id: u32) -> Option<&'static Dictionary> {
    REGISTRY.read().unwrap_or_else(|e| e.into_inner()).get(&id).copied()
}

thread_local! {
    /// This thread's compressor and the dictionary it was made with (0: none).
    static COMPRESSOR: RefCell<Option<(u32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    /// This thread's decompressors, one per dictionary id seen (0: none).
    static DECOMPRESSORS: RefCell<Vec<(u32, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(Vec::new()) };
    /// The dictionary [`encode`] uses on this thread: the writer's, set when the log starts and
    /// when a new one is adopted ([`super::dictionary`]).
    static CURRENT: Cell<Option<&'static Dictionary>> = const { Cell::new(None) };
}

/// Values [`encode`]d on this thread from now on use `dictionary` (`None`: plain zstd).
pub(crate) fn use_dictionary(dictionary: Option<&'static Dictionary>) {
    CURRENT.with(|c| c.set(dictionary));
}

/// Runs `f` with this thread's compressor for `dictionary` (made or switched as needed).
fn with_compressor<T>(
    dictionary: Option<&'static Dictionary>,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> Option<T>,
) -> Option<T> {
    let id = dictionary.map_or(0, |d| d.id);
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(made_for, _)| *made_for != id) {
            let mut compressor = match dictionary {
                Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(&d.encoder).ok()?,
                None => zstd::bulk::Compressor::new(LEVEL).ok()?,
            };
            // The value's header names the dictionary; the frame need not repeat it.
            compressor.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false)).ok()?;
            *cell = Some((id, compressor));
        }
        f(&mut cell.as_mut()?.1)
    })
}

/// The stored form of the envelope `plain`: compressed when that makes it smaller, with this
/// thread's dictionary ([`use_dictionary`]). An envelope is msgpack, which never uses the byte
/// [`MARK`]; bytes that begin with it anyway are always stored compressed, so that no plain
/// value can be read as a compressed one.
pub fn encode(plain: Vec<u8>) -> Vec<u8> {
    let ambiguous = plain.first() == Some(&MARK);
    if !ambiguous && !(MIN_COMPRESSED..=MAX_PLAIN_BYTES).contains(&plain.len()) {
        return plain;
    }
    match compress(CURRENT.with(Cell::get), &plain) {
        Some(out) if ambiguous || out.len() < plain.len() => out,
        // No context (out of memory) or no gain: the plain form is always readable.
        _ => plain,
    }
}

/// `plain` in the compressed form, with `dictionary`.
fn compress(dictionary: Option<&'static Dictionary>, plain: &[u8]) -> Option<Vec<u8>> {
    let mut header = vec![MARK, FORMAT_ZSTD];
    leb128_push(&mut header, dictionary.map_or(0, |d| d.id));
    with_compressor(dictionary, |compressor| {
        let mut out = vec![0; header.len() + zstd::zstd_safe::compress_bound(plain.len())];
        out[..header.len()].copy_from_slice(&header);
        let written = compressor.compress_to_buffer(plain, &mut out[header.len()..]).ok()?;
        out.truncate(header.len() + written);
        Some(out)
    })
}

/// The bytes `plain` would be stored in with `dictionary` (the trainer's measure).
pub fn compressed_len(dictionary: Option<&'static Dictionary>, plain: &[u8]) -> usize {
    compress(dictionary, plain).map_or(plain.len(), |out| out.len().min(plain.len()))
}

/// The plain envelope of the stored value of event `seq`; a sealed value must have been sealed
/// for `seq`.
pub fn decode(seq: u64, stored: &[u8]) -> Result<Cow<'_, [u8]>, CorruptValue> {
    let at = |fault| CorruptValue { seq, fault };
    if !is_sealed(stored) {
        return plain(stored).map_err(at);
    }
    let (sealed_for, inner) = open(stored).map_err(at)?;
    if sealed_for != seq {
        return Err(at(ValueFault::Misplaced(sealed_for)));
    }
    Ok(Cow::Owned(plain(&inner).map_err(at)?.into_owned()))
}

/// Whether `stored` is in the compressed form (tests and statistics).
pub fn is_compressed(stored: &[u8]) -> bool {
    stored.first() == Some(&MARK)
}

/// The plain envelope of a stored value (the caller names the event when it fails).
pub fn plain(stored: &[u8]) -> Result<Cow<'_, [u8]>, ValueFault> {
    let Some((&MARK, rest)) = stored.split_first() else { return Ok(Cow::Borrowed(stored)) };
    let (&format, rest) = rest.split_first().ok_or(ValueFault::Truncated)?;
    if format == FORMAT_SEALED {
        let (_, inner) = open(stored)?;
        return Ok(Cow::Owned(plain(&inner)?.into_owned()));
    }
    if format != FORMAT_ZSTD {
        return Err(ValueFault::UnknownFormat(format));
    }
    let (id, frame) = leb128(rest)?;
    let dictionary = match id {
        0 => None,
        id => Some(lookup(id).ok_or(ValueFault::UnknownDictionary(id))?),
    };
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err(ValueFault::NoContentSize),
        Err(_) => return Err(ValueFault::Zstd("not a zstd frame".into())),
    };
    if size > MAX_PLAIN_BYTES as u64 {
        return Err(ValueFault::TooLarge(size));
    }
    let mut out = Vec::with_capacity(size as usize);
    DECOMPRESSORS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let at = match cell.iter().position(|(made_for, _)| *made_for == id) {
            Some(at) => at,
            None => {
                let made = match dictionary {
                    Some(d) => zstd::bulk::Decompressor::with_prepared_dictionary(&d.decoder),
                    None => zstd::bulk::Decompressor::new(),
                };
                cell.push((id, made.map_err(|e| ValueFault::Zstd(e.to_string()))?));
                cell.len() - 1
            }
        };
        cell[at].1.decompress_to_buffer(frame, &mut out).map_err(|e| ValueFault::Zstd(e.to_string()))
    })?;
    if out.len() as u64 != size {
        return Err(ValueFault::Zstd(format!("{} bytes instead of the {size} declared", out.len())));
    }
    Ok(Cow::Owned(out))
}

/// Bytes before the nonce: marker, format, sequence number, key id.
pub const HEADER_LEN: usize = 2 + 8 + KEY_ID_LEN;

/// `inner` (a stored value, unsealed) sealed as the value of event `seq` under the data key
/// `key` whose id is `id`.
pub fn seal(seq: u64, id: &KeyId, key: &[u8; 32], inner: &[u8]) -> Result<Vec<u8>, redb::Error> {
    let mut out = Vec::with_capacity(HEADER_LEN + 12 + inner.len() + 16);
    out.extend_from_slice(&[MARK, FORMAT_SEALED]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(id);
    let header = out.clone();
    super::keys::aead_seal(key, &header, inner, &mut out)?;
    Ok(out)
}

/// Whether `stored` is a sealed value.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.len() >= 2 && stored[0] == MARK && stored[1] == FORMAT_SEALED
}

/// The parts of a sealed value's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sequence number the value was sealed for.
    pub seq: u64,
    /// The data key it was sealed under.
    pub key_id: KeyId,
}

/// The header of the sealed value `stored`.
pub fn header(stored: &[u8]) -> Result<Header, ValueFault> {
    if stored.len() < HEADER_LEN {
        return Err(ValueFault::Truncated);
    }
    let seq = u64::from_le_bytes(stored[2..10].try_into().expect("8 bytes"));
    let key_id: KeyId = stored[10..HEADER_LEN].try_into().expect("16 bytes");
    Ok(Header { seq, key_id })
}

/// The sequence number `stored` was sealed for, and its unsealed stored form.
pub fn open(stored: &[u8]) -> Result<(u64, Vec<u8>), ValueFault> {
    let head = header(stored)?;
    let key = super::keys::find(&head.key_id).ok_or(ValueFault::UnknownKey)?;
    let inner =
        super::keys::aead_open(&key, &stored[..HEADER_LEN], &stored[HEADER_LEN..]).ok_or(ValueFault::Unauthentic)?;
    if is_sealed(&inner) {
        return Err(ValueFault::Nested);
    }
    Ok((head.seq, inner))
}

/// Appends `value` as unsigned LEB128.
fn leb128_push(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let part = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(part);
            return;
        }
        out.push(part | 0x80);
    }
}

/// An unsigned LEB128 `u32` at the start of `bytes`, and the rest.
fn leb128(bytes: &[u8]) -> Result<(u32, &[u8]), ValueFault> {
    let mut value: u32 = 0;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        let part = u32::from(b & 0x7f);
        if i == 4 && part > 0x0f {
            return Err(ValueFault::Truncated);
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(ValueFault::Truncated)
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
