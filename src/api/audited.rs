//! Every API read that returns patient data is audited before its answer leaves: the
//! response is held, the ids of every patient in it are collected, and a Query (a list or a
//! search) or Patient Record read (one item) record naming the client, its address, the path
//! and those ids is committed through the log writer; only then is the response sent. When
//! the record cannot be committed the client gets 503 instead of the data. The writer's group
//! commit batches the records of concurrent reads into one commit.
//!
//! The live event stream is recorded when it opens (its events are not known yet).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::audit::{recorded, requester};
use super::{ApiError, ApiState};

/// The paths whose answers carry patient data (each with everything below it).
pub(super) const PATIENT_DATA: &[&str] = &[
    "/api/v1/events",
    "/api/v1/studies",
    "/api/v1/orders",
    "/api/v1/cases",
    "/api/v1/matches",
    "/api/v1/unmatched",
    "/api/v1/worklist",
];

/// The largest answer held for its audit (a page of 1,000 events is far below).
const MAX_HELD: usize = 256 << 20;
/// Patient ids named in one record at most (the rest of a huge page is summarised by the path).
const MAX_IDS: usize = 10_000;

/// Whether `path` returns patient data.
pub(super) fn is_patient_data(path: &str) -> bool {
    PATIENT_DATA.iter().any(|p| path.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// The middleware: audits the successful answers of the paths in [`PATIENT_DATA`].
pub(super) async fn audit_reads(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if !is_patient_data(request.uri().path()) {
        return next.run(request).await;
    }
    let who = requester(request.extensions());
    let uri = request.uri();
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    if !response.status().is_success() {
        return response;
    }
    let streaming =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let now = jiff::Timestamp::now();
    if streaming {
        let record = crate::audit::kinds::api_read(&state.edge_id, &who, &path, &[], now);
        return match recorded(&state, vec![record]).await {
            Ok(()) => response,
            Err(e) => e.into_response(),
        };
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_HELD).await {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::internal(format!("cannot hold the answer for its audit: {e}")).into_response(),
    };
    let ids = serde_json::from_slice::<Value>(&bytes).map(|v| patient_ids(&v)).unwrap_or_default();
    let record = crate::audit::kinds::api_read(&state.edge_id, &who, &path, &ids, now);
    match recorded(&state, vec![record]).await {
        Ok(()) => Response::from_parts(parts, Body::from(bytes)),
        Err(e) => e.into_response(),
    }
}

/// The patient ids a JSON answer names (once each): values of `patient_id`,
/// `surviving_patient_id`, of `patient_ids`, `other_patient_ids` and `prior_patient_ids`, and
/// the `id` and `identifiers[].id` of a `patient` object.
pub(super) fn patient_ids(value: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    collect(value, &mut ids);
    ids
}

fn collect(value: &Value, ids: &mut Vec<String>) {
    let mut add = |v: &Value| {
        if let Some(id) = v.as_str().filter(|s| !s.is_empty())
            && ids.len() < MAX_IDS
            && !ids.iter().any(|known| known == id)
        {
            ids.push(id.to_owned());
        }
    };
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match key.as_str() {
                    "patient_id" | "surviving_patient_id" => add(v),
                    "patient_ids" | "other_patient_ids" | "prior_patient_ids" => {
                        v.as_array().into_iter().flatten().for_each(&mut add);
                    }
                    "patient" => {
                        add(&v["id"]);
                        let identifiers = v["identifiers"].as_array().into_iter().flatten();
                        identifiers.for_each(|i| add(&i["id"]));
                    }
                    _ => {}
                }
            }
            map.values().for_each(|v| collect(v, ids));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, ids)),
        _ => {}
    }
}

#[cfg(test)]
#[path = "audited_tests.rs"]
mod tests;
