//! Stored envelopes as JSON for the read-back endpoint, converted generically from msgpack so
//! that event types and fields this binary does not know still show.
//!
//! The mapping: nil → `null`; booleans, integers and strings as themselves (invalid UTF-8 is
//! replaced with U+FFFD); floats as numbers (NaN and infinities as `null`); arrays and maps as
//! arrays and objects, a non-string map key written as its JSON text (`1`, `true`); binary as
//! a base64 string (RFC 4648 standard alphabet, padded), except a 16-byte binary under a key
//! ending in `_id` (`event_id`, `correlation_id`…), which is how the edge's msgpack carries a
//! UUID, shown as a hyphenated UUID; extension values as `{"ext_type": n, "base64": "..."}`.

use serde_json::{Map, Number, Value};

/// The envelope `bytes` as JSON. Bytes that do not decode (the hub checked every envelope's
/// head on receipt, so this means a damaged file) show as `{"undecodable": reason}`.
pub fn envelope_json(bytes: &[u8]) -> Value {
    match rmpv::decode::read_value(&mut &bytes[..]) {
        Ok(value) => to_json(&value, None),
        Err(e) => serde_json::json!({ "undecodable": e.to_string() }),
    }
}

/// `value` as JSON; `key` is the map key it sits under, if any.
fn to_json(value: &rmpv::Value, key: Option<&str>) -> Value {
    use rmpv::Value as M;
    match value {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(*b),
        M::Integer(i) => i.as_u64().map(Value::from).or_else(|| i.as_i64().map(Value::from)).unwrap_or(Value::Null),
        M::F32(f) => float(f64::from(*f)),
        M::F64(f) => float(*f),
        M::String(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        M::Binary(bytes) => binary(bytes, key),
        M::Array(items) => Value::Array(items.iter().map(|v| to_json(v, None)).collect()),
        M::Map(entries) => {
            let mut object = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let name = key_text(k);
                let converted = to_json(v, Some(&name));
                object.insert(name, converted);
            }
            Value::Object(object)
        }
        M::Ext(tag, data) => serde_json::json!({ "ext_type": tag, "base64": base64(data) }),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn binary(bytes: &[u8], key: Option<&str>) -> Value {
    if key.is_some_and(|k| k.ends_with("_id"))
        && let Ok(uuid) = uuid::Uuid::from_slice(bytes)
    {
        return Value::String(uuid.hyphenated().to_string());
    }
    Value::String(base64(bytes))
}

/// A map key as an object member name: a string as it is, anything else as its JSON text.
fn key_text(key: &rmpv::Value) -> String {
    match key {
        rmpv::Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => to_json(other, None).to_string(),
    }
}

/// RFC 4648 base64, standard alphabet, with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
