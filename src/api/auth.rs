//! Who may do what through the API.
//!
//! Today one rule: operator actions (retrying or skipping a dead letter, forking the sync,
//! taking a backup) need `Authorization: Bearer <http.operator_token>`, compared in constant
//! time. Without a configured token they are refused with 403, with a missing or wrong one
//! with 401 (`WWW-Authenticate: Bearer`). Reads, health and metrics are open. Every handler
//! of an operator action asks [`authorize`] before it does anything; named clients with
//! scopes will be decided here too.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;

/// `None` when the request may act; else the refusal to send.
pub(super) fn authorize(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.operator_token else {
        let body = serde_json::json!({ "error": "operator actions are disabled: set http.operator_token" });
        return Some((StatusCode::FORBIDDEN, Json(body)).into_response());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => None,
        _ => {
            let body =
                serde_json::json!({ "error": "operator actions need Authorization: Bearer <http.operator_token>" });
            Some((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Json(body)).into_response())
        }
    }
}

/// Equal, in a time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
