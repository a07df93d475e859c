//! Query and path parameters shared by the handlers: numbers, page sizes, identifiers, and
//! the rule that a search takes exactly one key. Each check answers 400 with a message that
//! names the parameter.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use super::ApiError;
use crate::ids::is_valid_uid;
use crate::projections::views::Search;

/// Items per page when `limit` is not given, and the most one page may hold.
pub(super) const DEFAULT_LIMIT: usize = 100;
pub(super) const MAX_LIMIT: usize = 1000;

/// The longest search key or cursor accepted (accession numbers and patient ids are far
/// shorter; this only keeps absurd input out of the logs and the database).
const MAX_TEXT: usize = 256;

/// The query's parameters, or 400 naming the parameter that is wrong (an unknown one with
/// the list of those the path takes).
pub(super) fn query<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| ApiError::bad_request(query_problem(&e.body_text())))
}

/// `?after=N&limit=N` of a page, and nothing else.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageParams {
    after: Option<String>,
    limit: Option<String>,
}

/// The `after` (default 0) and `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) of a
/// page query, or 400 naming what is wrong.
pub(super) fn page(params: Result<Query<PageParams>, QueryRejection>) -> Result<(u64, usize), ApiError> {
    let p = query(params)?;
    Ok((number("after", p.after.as_deref(), 0)?, limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?))
}

/// axum's rejection text ("Failed to deserialize query string: unknown field `foo`,
/// expected `after` or `limit`") in the words of the rest of the API.
fn query_problem(text: &str) -> String {
    let serde = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text).trim();
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    // serde_path_to_error puts the parameter's path first ("foo: unknown field `foo`, …").
    let after = |marker: &str| serde.find(marker).map(|at| &serde[at + marker.len()..]);
    if let Some(rest) = after("unknown field ") {
        let name = quoted(rest).unwrap_or_default();
        let known: Vec<&str> = rest.split('`').skip(3).step_by(2).collect();
        let takes = if known.is_empty() { "no parameters".to_owned() } else { known.join(", ") };
        return format!("unknown parameter {name:?}; this path takes {takes}");
    }
    if let Some(rest) = after("duplicate field ") {
        return format!("parameter {:?} is given more than once", quoted(rest).unwrap_or_default());
    }
    format!("malformed query string: {serde}")
}

/// A non-negative integer parameter, `default` when absent.
pub(super) fn number(name: &str, value: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("{name} must be a non-negative integer, got {v:?}"))),
    }
}

/// A page size: `default` when absent, else between 1 and `max`.
pub(super) fn limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = number("limit", value, default as u64)?;
    if !(1..=max as u64).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {max}")));
    }
    Ok(limit as usize)
}

/// A free-text key (accession number, patient id): not empty, no control characters.
pub(super) fn text<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{name} must not be empty")));
    }
    if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{name} must be at most {MAX_TEXT} bytes without control characters"
        )));
    }
    Ok(value)
}

/// The one search key given among `keys` (name, value): 400 when none or several are.
pub(super) fn one_search<'a>(keys: &[(&'static str, Option<&'a str>)]) -> Result<(&'static str, &'a str), ApiError> {
    let given: Vec<_> = keys.iter().filter_map(|(name, value)| value.map(|v| (*name, v))).collect();
    match given.as_slice() {
        [(name, value)] => Ok((name, text(name, value)?)),
        _ => {
            let names: Vec<_> = keys.iter().map(|(name, _)| *name).collect();
            Err(ApiError::bad_request(format!("give exactly one search parameter of: {}", names.join(", "))))
        }
    }
}

/// The search of orders or studies: exactly one of `accession` and `patient_id`.
pub(super) fn search(accession: Option<&str>, patient_id: Option<&str>) -> Result<Search, ApiError> {
    let (name, key) = one_search(&[("accession", accession), ("patient_id", patient_id)])?;
    Ok(if name == "accession" { Search::Accession(key.to_owned()) } else { Search::PatientId(key.to_owned()) })
}

/// 400 unless `uid` is a DICOM UID.
pub(super) fn study_uid(uid: &str) -> Result<(), ApiError> {
    if is_valid_uid(uid) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!("{uid:?} is not a DICOM UID (digits and dots, at most 64 characters)")))
}

/// 400 unless `id` is an order id, `<HL7 message id (a UUID)>:<order group index>`.
pub(super) fn order_id(id: &str) -> Result<(), ApiError> {
    let valid = id.split_once(':').is_some_and(|(message, index)| {
        uuid::Uuid::try_parse(message).is_ok() && !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
    });
    if valid {
        return Ok(());
    }
    Err(ApiError::bad_request(format!("{id:?} is not an order id (<HL7 message id>:<order group index>)")))
}

/// 400 unless `id` is a patient case id (a UUID).
pub(super) fn case_id(id: &str) -> Result<(), ApiError> {
    if uuid::Uuid::try_parse(id).is_ok() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!("{id:?} is not a patient case id (a UUID)")))
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
