//! `[[forward.destinations]]`: where the images go (the central archive), how each
//! destination confirms what it holds, and whether retention waits for it.
//!
//! This version forwards over DICOM C-STORE, confirmed by DICOM Storage Commitment
//! (`confirm = "commitment"`, the default) or by the store's own success (`confirm = "store"`);
//! `kind = "stow"` is refused by `check-config` with that reason, never accepted and silently
//! ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::{Checker, ae_title};
use super::units;

/// `[forward]` as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawForward {
    pub destinations: Vec<RawDestination>,
}

/// One `[[forward.destinations]]` table as written.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDestination {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: u16,
    pub called_ae: String,
    /// Empty: `dicom.ae_title`.
    pub calling_ae: String,
    pub confirm: String,
    pub required: bool,
    pub associations: usize,
    pub max_pdu: String,
    pub timeout: String,
    pub batch: usize,
    pub retry_base: String,
    pub retry_cap: String,
    pub breaker_failures: u32,
    pub breaker_open: String,
    pub refused_attempts: u32,
    pub commitment_timeout: String,
}

impl Default for RawDestination {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: "dicom".into(),
            host: String::new(),
            port: 104,
            called_ae: String::new(),
            calling_ae: String::new(),
            confirm: "commitment".into(),
            required: true,
            associations: 2,
            max_pdu: "64KiB".into(),
            timeout: "30s".into(),
            batch: 64,
            retry_base: "1s".into(),
            retry_cap: "5m".into(),
            breaker_failures: 5,
            breaker_open: "60s".into(),
            refused_attempts: 3,
            commitment_timeout: "5m".into(),
        }
    }
}

/// How a destination confirms that it holds an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Its C-STORE Success alone (an archive without Storage Commitment).
    Store,
    /// DICOM Storage Commitment (Push Model): an N-ACTION after each study's instances, the
    /// archive's N-EVENT-REPORT to our SCP.
    Commitment,
}

/// One destination, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Names its cursor, its events and its metrics: keep it stable.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub called_ae: String,
    pub calling_ae: String,
    pub confirm: Confirm,
    /// Retention deletes a file only once this destination confirmed it.
    pub required: bool,
    /// Associations in parallel (one study per association where possible).
    pub associations: usize,
    /// The largest PDU we receive (the peer's own maximum bounds what we send).
    pub max_pdu: u32,
    /// Connecting, and each read or write on the association.
    pub timeout: Duration,
    /// Most instances read after the cursor per round.
    pub batch: usize,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    /// Sends of an instance the destination refuses (a failure status) before it becomes a
    /// dead letter; 1: no retry.
    pub refused_attempts: u32,
    /// With `confirm = "commitment"`: how long a commitment request waits for the archive's
    /// report before it is asked again.
    pub commitment_timeout: Duration,
}

/// `[forward]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardConfig {
    pub destinations: Vec<Destination>,
}

impl ForwardConfig {
    /// The destinations that confirm by Storage Commitment, with the AE title they report from
    /// (our SCP takes their reports).
    pub fn commitment_archives(&self) -> Vec<(String, String)> {
        let by_commitment = self.destinations.iter().filter(|d| d.confirm == Confirm::Commitment);
        by_commitment.map(|d| (d.name.clone(), d.called_ae.clone())).collect()
    }

    /// The names of the destinations retention waits for.
    pub fn required(&self) -> Vec<String> {
        self.destinations.iter().filter(|d| d.required).map(|d| d.name.clone()).collect()
    }
}

/// `[forward]` checked; `our_ae` is `dicom.ae_title`, the default calling AE title.
pub(super) fn forward_config(c: &mut Checker, raw: &RawForward, our_ae: &str) -> ForwardConfig {
    let mut destinations: Vec<Destination> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, d) in raw.destinations.iter().enumerate() {
        let key = |name: &str| format!("forward.destinations[{i}].{name}");
        let name = c.check(&key("name"), destination_name(&d.name));
        if names.contains(&d.name.as_str()) {
            c.problem(&key("name"), format!("{:?} names two destinations", d.name));
        }
        names.push(&d.name);
        match d.kind.as_str() {
            "dicom" => {}
            "stow" => c.problem(&key("kind"), "\"stow\" (STOW-RS) is not supported by this version; use \"dicom\""),
            other => c.problem(&key("kind"), format!("{other:?} is not a kind; use \"dicom\"")),
        }
        let confirm = match d.confirm.as_str() {
            "store" => Some(Confirm::Store),
            "commitment" => Some(Confirm::Commitment),
            other => {
                c.problem(&key("confirm"), format!("{other:?} is not a confirmation; use \"commitment\" or \"store\""));
                None
            }
        };
        let host = d.host.trim();
        if host.is_empty() {
            c.problem(&key("host"), "missing (required)");
        }
        if d.port == 0 {
            c.problem(&key("port"), "must not be 0");
        }
        let called_ae = c.check(&key("called_ae"), ae_title(&d.called_ae));
        let calling_ae = if d.calling_ae.trim().is_empty() {
            Some(our_ae.to_owned())
        } else {
            c.check(&key("calling_ae"), ae_title(&d.calling_ae))
        };
        let range = |c: &mut Checker, k: &str, v: usize, max: usize| {
            if (1..=max).contains(&v) {
                Some(v)
            } else {
                c.problem(&key(k), format!("{v} is out of range (1..={max})"));
                None
            }
        };
        let associations = range(c, "associations", d.associations, 64);
        let batch = range(c, "batch", d.batch, 10_000);
        let refused_attempts = range(c, "refused_attempts", d.refused_attempts as usize, 10);
        let max_pdu = c.check(&key("max_pdu"), max_pdu(&d.max_pdu));
        let mut duration = |k: &str, v: &str| c.check(&key(k), units::positive_duration(v));
        let (timeout, retry_base, retry_cap, breaker_open, commitment_timeout) = (
            duration("timeout", &d.timeout),
            duration("retry_base", &d.retry_base),
            duration("retry_cap", &d.retry_cap),
            duration("breaker_open", &d.breaker_open),
            duration("commitment_timeout", &d.commitment_timeout),
        );
        let (
            Some(name),
            Some(confirm),
            Some(called_ae),
            Some(calling_ae),
            Some(associations),
            Some(batch),
            Some(max_pdu),
            Some(timeout),
            Some(retry_base),
            Some(retry_cap),
            Some(breaker_open),
            Some(refused_attempts),
            Some(commitment_timeout),
        ) = (
            name,
            confirm,
            called_ae,
            calling_ae,
            associations,
            batch,
            max_pdu,
            timeout,
            retry_base,
            retry_cap,
            breaker_open,
            refused_attempts,
            commitment_timeout,
        )
        else {
            continue;
        };
        destinations.push(Destination {
            name,
            host: host.to_owned(),
            port: d.port,
            called_ae,
            calling_ae,
            confirm,
            required: d.required,
            associations,
            max_pdu,
            timeout,
            batch,
            retry_base,
            retry_cap,
            breaker_failures: d.breaker_failures.max(1),
            breaker_open,
            refused_attempts: refused_attempts as u32,
            commitment_timeout,
        });
    }
    ForwardConfig { destinations }
}

/// Letters, digits, `-`, `_` and `.`, 1-64 of them: it names metrics and a cursor.
fn destination_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(value.to_owned()) } else { Err(format!("{value:?} is not a name (1-64 of A-Z a-z 0-9 - _ .)")) }
}

/// The largest PDU we accept: 4 KiB to 16 MiB.
fn max_pdu(value: &str) -> Result<u32, String> {
    let bytes = units::size(value)?;
    if (4096..=(16 << 20)).contains(&bytes) {
        Ok(bytes as u32)
    } else {
        Err(format!("{value:?} must be between 4KiB and 16MiB"))
    }
}
