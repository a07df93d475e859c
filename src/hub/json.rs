//! Stored envelopes as JSON for the read-back endpoints and the consumers' feed, converted
//! generically from msgpack so that event types and fields this binary does not know still
//! show. Written straight to the output ([`EnvelopeJson`]), object members in the order the
//! envelope holds them.
//!
//! The mapping: nil → `null`; booleans, integers and strings as themselves (invalid UTF-8 is
//! replaced with U+FFFD); floats as numbers (NaN and infinities as `null`); arrays and maps as
//! arrays and objects, a non-string map key written as its JSON text (`1`, `true`); binary as
//! a base64 string (RFC 4648 standard alphabet, padded), except a 16-byte binary under a key
//! ending in `_id` (`event_id`, `correlation_id`…), which is how the edge's msgpack carries a
//! UUID, shown as a hyphenated UUID; extension values as `{"ext_type": n, "base64": "..."}`.

use std::borrow::Cow;

use rmpv::ValueRef;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// The envelope `bytes` as JSON, written straight to the serializer: the msgpack is read
/// into borrowed values and transcoded, with no tree of JSON values in between (a page of
/// 1,000 events is mostly this work; figures in `BENCHMARKS.md`). Bytes that do not decode
/// (the hub checked every envelope's head on receipt, so this means a damaged file) show as
/// `{"undecodable": reason}`.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeJson<'a>(pub &'a [u8]);

impl Serialize for EnvelopeJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match rmpv::decode::read_value_ref(&mut &self.0[..]) {
            Ok(value) => Transcode { value: &value, key: None }.serialize(serializer),
            Err(e) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("undecodable", &e.to_string())?;
                map.end()
            }
        }
    }
}

/// The envelope `bytes` as a JSON value (see [`EnvelopeJson`]).
pub fn envelope_json(bytes: &[u8]) -> Value {
    serde_json::to_value(EnvelopeJson(bytes)).unwrap_or(Value::Null)
}

/// One msgpack value as JSON; `key` is the map key it sits under, if any.
struct Transcode<'a, 'v> {
    value: &'a ValueRef<'v>,
    key: Option<&'a str>,
}

impl Serialize for Transcode<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            ValueRef::Nil => serializer.serialize_unit(),
            ValueRef::Boolean(b) => serializer.serialize_bool(*b),
            ValueRef::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(n), _) => serializer.serialize_u64(n),
                (None, Some(n)) => serializer.serialize_i64(n),
                (None, None) => serializer.serialize_unit(),
            },
            ValueRef::F32(f) => float(f64::from(*f), serializer),
            ValueRef::F64(f) => float(*f, serializer),
            ValueRef::String(text) => match text.as_str() {
                Some(text) => serializer.serialize_str(text),
                None => serializer.serialize_str(&String::from_utf8_lossy(text.as_bytes())),
            },
            ValueRef::Binary(bytes) => serializer.serialize_str(&binary(bytes, self.key)),
            ValueRef::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Transcode { value: item, key: None })?;
                }
                seq.end()
            }
            ValueRef::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    let name = key_text(k);
                    map.serialize_entry(name.as_ref(), &Transcode { value: v, key: Some(&name) })?;
                }
                map.end()
            }
            ValueRef::Ext(tag, data) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("ext_type", tag)?;
                map.serialize_entry("base64", &base64(data))?;
                map.end()
            }
        }
    }
}

/// A finite float as a number, NaN and infinities as `null`.
fn float<S: Serializer>(f: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if f.is_finite() { serializer.serialize_f64(f) } else { serializer.serialize_unit() }
}

fn binary(bytes: &[u8], key: Option<&str>) -> String {
    if key.is_some_and(|k| k.ends_with("_id"))
        && let Ok(uuid) = uuid::Uuid::from_slice(bytes)
    {
        return uuid.hyphenated().to_string();
    }
    base64(bytes)
}

/// A JSON body made on the blocking pool (a page of up to 1,000 envelopes is milliseconds of
/// CPU, which must not hold one of the async workers that receive batches).
pub(super) async fn render<T: Serialize + Send + 'static>(
    page: T,
) -> Result<axum::response::Response, super::routes::Reject> {
    use axum::response::IntoResponse;
    let body =
        super::routes::blocking(move || serde_json::to_vec(&page)).await?.map_err(super::routes::Reject::internal)?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A map key as an object member name: a string as it is, anything else as its JSON text.
fn key_text<'a>(key: &'a ValueRef<'_>) -> Cow<'a, str> {
    match key {
        ValueRef::String(s) => String::from_utf8_lossy(s.as_bytes()),
        other => Cow::Owned(serde_json::to_string(&Transcode { value: other, key: None }).unwrap_or_default()),
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
