//! From the TOML table to the [`raw`](super::raw) mirror, one key at a time.
//!
//! serde stops at the first unknown key or mistyped value of a file, which made an admin
//! fix a config one line per run. Here each key of each section is deserialized on its own
//! against its section's mirror: an unknown section or key, or a value of the wrong type, is
//! a problem of that key (with a hint when the key takes a duration or a size) and the key
//! keeps its default, so the checks after this one still run on everything else.

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::check::Checker;
use super::raw::{RawConfig, RawSite};
use super::units;

/// The sections of the file, in the order problems are reported.
const SECTIONS: [&str; 13] = [
    "site",
    "store",
    "mllp",
    "dicom",
    "http",
    "tls",
    "matching",
    "sync",
    "retention",
    "forward",
    "audit",
    "backup",
    "daemon",
];

/// The identity keys of `[site]`, all required.
const SITE_KEYS: [&str; 3] = ["tenant_id", "hospital_id", "edge_id"];

/// The mirror of `table`; every problem of its shape goes to `c`.
pub(super) fn read(c: &mut Checker, mut table: Table) -> RawConfig {
    for name in table.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        c.problem(name, format!("unknown section; the sections are {}", SECTIONS.join(", ")));
    }
    let mut take = |name: &str| table.remove(name);
    RawConfig {
        site: site(c, take("site")),
        store: section(c, "store", take("store")),
        mllp: section(c, "mllp", take("mllp")),
        dicom: section(c, "dicom", take("dicom")),
        http: section(c, "http", take("http")),
        tls: section(c, "tls", take("tls")),
        matching: section(c, "matching", take("matching")),
        sync: section(c, "sync", take("sync")),
        retention: section(c, "retention", take("retention")),
        forward: section(c, "forward", take("forward")),
        audit: section(c, "audit", take("audit")),
        backup: section(c, "backup", take("backup")),
        daemon: section(c, "daemon", take("daemon")),
    }
}

/// `[site]`: three strings, no defaults (an edge that guesses its hospital would file data
/// under the wrong one).
fn site(c: &mut Checker, value: Option<Value>) -> RawSite {
    let mut site = RawSite { tenant_id: String::new(), hospital_id: String::new(), edge_id: String::new() };
    let table = match value {
        Some(Value::Table(table)) => table,
        Some(other) => {
            c.problem("site", format!("must be a table ([site]), not {}", describe(&other)));
            Table::new()
        }
        None => {
            c.problem("site", "missing: [site] with tenant_id, hospital_id and edge_id is required");
            return site;
        }
    };
    for (key, value) in &table {
        let slot = match key.as_str() {
            "tenant_id" => &mut site.tenant_id,
            "hospital_id" => &mut site.hospital_id,
            "edge_id" => &mut site.edge_id,
            _ => {
                c.problem(&format!("site.{key}"), format!("unknown key; [site] takes {}", SITE_KEYS.join(", ")));
                continue;
            }
        };
        match value {
            Value::String(s) => *slot = s.clone(),
            other => c.problem(&format!("site.{key}"), format!("must be a string, not {}", describe(other))),
        }
    }
    for key in SITE_KEYS.iter().filter(|k| !table.contains_key(**k)) {
        c.problem(&format!("site.{key}"), "missing (required)");
    }
    site
}

/// A section with defaults: each key deserialized alone, the good ones together.
fn section<T: DeserializeOwned + Serialize + Default>(c: &mut Checker, name: &str, value: Option<Value>) -> T {
    let table = match value {
        None => return T::default(),
        Some(Value::Table(table)) => table,
        Some(other) => {
            c.problem(name, format!("must be a table ([{name}]), not {}", describe(&other)));
            return T::default();
        }
    };
    let defaults = Table::try_from(T::default()).unwrap_or_default();
    let mut good = Table::new();
    for (key, value) in table {
        let alone = Table::from_iter([(key.clone(), value.clone())]);
        match alone.try_into::<T>() {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => {
                let reason = reason(name, &defaults, &key, &value, e.message());
                c.problem(&format!("{name}.{key}"), reason);
            }
        }
    }
    good.try_into::<T>().unwrap_or_else(|e| {
        c.problem(name, e.message().to_owned());
        T::default()
    })
}

/// What is wrong with `key = value` in `[section]`, in the admin's words.
fn reason(section: &str, defaults: &Table, key: &str, value: &Value, serde_message: &str) -> String {
    let Some(default) = defaults.get(key) else {
        let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
        return format!("unknown key; [{section}] takes {}", known.join(", "));
    };
    let expected = match default {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Boolean(_) => "true or false",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
        _ => return serde_message.to_owned(),
    };
    if default.type_str() == value.type_str() {
        // The right TOML type holding an element of the wrong one (a list of numbers…).
        return serde_message.to_owned();
    }
    format!("must be {expected}, not {}{}", describe(value), hint(key, default, value))
}

/// For a duration or size key given a bare number: how to write it.
fn hint(key: &str, default: &Value, value: &Value) -> String {
    let default = default.as_str().unwrap_or("");
    let number = match value {
        Value::Integer(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        _ => None,
    };
    if units::duration(default).is_ok() || key.ends_with("_age") {
        let example = number.map(|n| format!("{key} = \"{n}s\" or ")).unwrap_or_default();
        format!("; durations are strings with a unit: {example}\"500ms\", \"60s\", \"5m\", \"24h\", \"90d\"")
    } else if default != "0" && units::size(default).is_ok() {
        let example = number.map(|n| format!("{key} = \"{n}\" (bytes) or ")).unwrap_or_default();
        format!("; sizes are strings with a binary unit: {example}\"512KiB\", \"16MiB\", \"2GiB\"")
    } else {
        String::new()
    }
}

/// A TOML value's type, with the value when it is short.
fn describe(value: &Value) -> String {
    match value {
        Value::Integer(n) => format!("an integer ({n})"),
        Value::Float(f) => format!("a number ({f})"),
        Value::Boolean(b) => format!("a boolean ({b})"),
        Value::String(s) if s.len() <= 40 => format!("a string ({s:?})"),
        Value::String(_) => "a string".into(),
        Value::Datetime(d) => format!("a date ({d})"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
    }
}
