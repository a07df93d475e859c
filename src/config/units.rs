//! Durations (`"500ms"`, `"60s"`, `"5m"`, `"24h"`) and sizes (`"16MiB"`, `"2GiB"`) as they
//! are written in the config file. Parsing is delegated to `humantime` and `bytesize`; this
//! file only adds the rules of our contract (no zero where zero makes no sense, percentages
//! for the disk reserve).

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

pub(super) fn size(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
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
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_of_the_contract() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(duration("5").is_err());
        assert!(positive_duration("0s").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(size("16MiB"), Ok(16 << 20));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert!(size("lots").is_err());
    }

    #[test]
    fn disk_reserve_is_bytes_or_percent() {
        assert_eq!(disk_reserve("2GiB"), Ok(DiskReserve::Bytes(2 << 30)));
        assert_eq!(disk_reserve("5%"), Ok(DiskReserve::Percent(5.0)));
        assert_eq!(DiskReserve::Percent(10.0).bytes_for(1000), 100);
        assert!(disk_reserve("101%").is_err());
        assert!(disk_reserve("x%").is_err());
    }
}
