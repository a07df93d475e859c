//! How an event's envelope is stored in the `events` table: compressed, behind a header that
//! names the format and the dictionary it needs.
//!
//! # Format
//!
//! * **Plain** (every value written before schema 6, and any value compression would not
//!   shrink): the msgpack envelope itself. It starts with a msgpack map marker.
//! * **Compressed**: `0xC1` (the one byte msgpack never uses, so no plain value starts with
//!   it), a format byte (`1` = one zstd frame), the dictionary id as an unsigned LEB128
//!   number (`0` = no dictionary), then the zstd frame, which records its content size.
//!
//! Readers see the plain envelope whatever the stored form ([`decode`]), so everything above
//! the engine (projections, the API, rebuild, the sync to the hub) sees the same bytes as
//! before. Decompression is bounded: a frame must declare its content size, at most
//! [`MAX_PLAIN_BYTES`], and is decompressed into a buffer of exactly that size; a value that
//! does not decompress, declares no size, or names a format or dictionary this binary does not
//! know is a [`CorruptValue`], never a panic. Values larger than [`MAX_PLAIN_BYTES`] are
//! stored plain.

use std::borrow::Cow;
use std::cell::RefCell;

/// The first byte of a compressed value (msgpack's "never used" marker).
pub const MARK: u8 = 0xC1;
/// Format byte: one zstd frame.
pub const FORMAT_ZSTD: u8 = 1;
/// The largest envelope stored compressed; a compressed value may declare no more.
pub const MAX_PLAIN_BYTES: usize = 64 << 20;
/// zstd's level for event values (about 2× on HL7 without a dictionary).
const LEVEL: i32 = 3;
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
}

/// A stored event value that cannot be read: corruption, reported with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {seq}: the stored value is corrupt: {fault}")]
pub struct CorruptValue {
    pub seq: u64,
    pub fault: ValueFault,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The stored form of the envelope `plain`: compressed when that makes it smaller. An
/// envelope is msgpack, which never uses the byte [`MARK`]; bytes that begin with it anyway
/// are always stored compressed, so that no plain value can be read as a compressed one.
pub fn encode(plain: Vec<u8>) -> Vec<u8> {
    let ambiguous = plain.first() == Some(&MARK);
    if !ambiguous && !(MIN_COMPRESSED..=MAX_PLAIN_BYTES).contains(&plain.len()) {
        return plain;
    }
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(LEVEL).ok();
        }
        let compressor = cell.as_mut()?;
        let mut out = vec![0; 3 + zstd::zstd_safe::compress_bound(plain.len())];
        out[..3].copy_from_slice(&[MARK, FORMAT_ZSTD, 0]);
        let written = compressor.compress_to_buffer(&plain, &mut out[3..]).ok()?;
        out.truncate(3 + written);
        Some(out)
    });
    match compressed {
        Some(out) if ambiguous || out.len() < plain.len() => out,
        // No context (out of memory) or no gain: the plain form is always readable.
        _ => plain,
    }
}

/// The plain envelope of the stored value of event `seq`.
pub fn decode(seq: u64, stored: &[u8]) -> Result<Cow<'_, [u8]>, CorruptValue> {
    plain(stored).map_err(|fault| CorruptValue { seq, fault })
}

/// Whether `stored` is in the compressed form (tests and statistics).
pub fn is_compressed(stored: &[u8]) -> bool {
    stored.first() == Some(&MARK)
}

/// The plain envelope of a stored value (the caller names the event when it fails).
pub fn plain(stored: &[u8]) -> Result<Cow<'_, [u8]>, ValueFault> {
    let Some((&MARK, rest)) = stored.split_first() else { return Ok(Cow::Borrowed(stored)) };
    let (&format, rest) = rest.split_first().ok_or(ValueFault::Truncated)?;
    if format != FORMAT_ZSTD {
        return Err(ValueFault::UnknownFormat(format));
    }
    let (dictionary, frame) = leb128(rest)?;
    if dictionary != 0 {
        return Err(ValueFault::UnknownDictionary(dictionary));
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) => size,
        Ok(None) => return Err(ValueFault::NoContentSize),
        Err(_) => return Err(ValueFault::Zstd("not a zstd frame".into())),
    };
    if size > MAX_PLAIN_BYTES as u64 {
        return Err(ValueFault::TooLarge(size));
    }
    let mut out = Vec::with_capacity(size as usize);
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new().map_err(|e| ValueFault::Zstd(e.to_string()))?);
        }
        let decompressor = cell.as_mut().expect("just set");
        decompressor.decompress_to_buffer(frame, &mut out).map_err(|e| ValueFault::Zstd(e.to_string()))
    })?;
    if out.len() as u64 != size {
        return Err(ValueFault::Zstd(format!("{} bytes instead of the {size} declared", out.len())));
    }
    Ok(Cow::Owned(out))
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
