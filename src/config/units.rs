//! Durations (`"500ms"`, `"60s"`, `"5m"`, `"24h"`) and sizes (`"16MiB"`, `"2GiB"`, binary
//! units only) as they are written in the config file. Parsing is delegated to `humantime`
//! and `bytesize`; this file only adds the rules of our contract (binary units, no zero
//! where zero makes no sense, percentages for the disk reserve).

use std::time::Duration;

/// How much free space the log keeps in hand. Below it, new data is refused with a negative
/// answer so that the disk never fills under the database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskReserve {
    /// Absolute free bytes that must remain on the state directory's filesystem.
    Bytes(u64),
    /// Percentage (0–100) of the filesystem's size that must remain free.
    Percent(f64),
}

impl DiskReserve {
    /// The reserve in bytes for a filesystem of `total_bytes`.
    pub fn bytes_for(&self, total_bytes: u64) -> u64 {
        match *self {
            DiskReserve::Bytes(b) => b,
            DiskReserve::Percent(p) => (total_bytes as f64 * p / 100.0).ceil() as u64,
        }
    }
}

/// A duration as the config writes it (`"500ms"`, `"24h"`); the error says how to write one.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write e.g. \"500ms\", \"60s\", \"5m\", \"24h\""))
}

pub(super) fn positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(d)
}

/// A size with a binary unit (`"512KiB"`, `"16MiB"`, `"2GiB"`) or a plain number of bytes.
///
/// Decimal units (`"16MB"`, `"2G"`) are refused rather than taken as powers of 1000: the
/// contract says sizes are binary, and a limit silently 5 % smaller than meant (16 MB is
/// 16,000,000 bytes, 16 MiB is 16,777,216) is a surprise on the day a message hits it.
pub(super) fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c.is_whitespace());
    let unit = t[number.len()..].trim();
    const DECIMAL: [&str; 12] = ["k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb", "e", "eb"];
    if DECIMAL.iter().any(|d| unit.eq_ignore_ascii_case(d)) {
        let binary = format!("{}iB", unit[..1].to_ascii_uppercase());
        return Err(format!(
            "{text:?} has a decimal unit ({unit} = 1000-based); sizes here are binary: write \"{number}{binary}\" \
             (1024-based), or a number of bytes"
        ));
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size ({e}); write e.g. \"16MiB\", \"2GiB\""))
}

pub(super) fn disk_reserve(text: &str) -> Result<DiskReserve, String> {
    let t = text.trim();
    if let Some(number) = t.strip_suffix('%') {
        let p: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a percentage; write e.g. \"5%\""))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{text:?} must be between 0% and 100%"));
        }
        return Ok(DiskReserve::Percent(p));
    }
    size(t).map(DiskReserve::Bytes)
}

#[cfg(test)]
#[path = "units_tests.rs"]
mod tests;
