//! `GET /status`, the page an admin opens in a browser (and `GET /`, which redirects to it):
//! server-rendered HTML with no script, no framework and nothing fetched from elsewhere,
//! reloaded by the browser every 5 seconds (`<meta http-equiv="refresh">`).
//!
//! What it shows, and where each figure comes from:
//! * the edge: tenant, hospital and edge ids, version, uptime;
//! * each configured listener (MLLP, MLLP/TLS, DICOM, DICOM/TLS, the worklist when on): its
//!   address, whether it accepts, its last answer, its answers in the last hour and day and
//!   the negative ones, its last error ([`crate::activity`]);
//! * what `GET /api/v1/status` answers, from the same function: the log's head and what it
//!   holds, what was answered since the start, the hub sync (cursor, lag, breaker, last
//!   success, dead letters) and the forwarding destinations;
//! * the orders and completed studies waiting for a match: how many, the oldest one's age;
//! * the free disk space against `store.disk_reserve`, and in how many days the reserve is
//!   reached at the last 24 hours' rate;
//! * two plots (inline SVG drawn here, [`plot`]) of HL7 messages and DICOM instances per
//!   second over the last 24 hours.
//!
//! It needs the scope `status` and takes HTTP Basic credentials ([`super::auth`]). No patient
//! data is on it unless the client also has the scope `read`: then the waiting orders and
//! studies are listed with patient id, name and accession (escaped by the template), and the
//! page view is recorded in the audit trail with those patients before it is sent, like
//! every read of patient data.

mod plot;
mod render;

use axum::extract::State;
use axum::http::{Extensions, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::Timestamp;

use super::{ApiError, ApiState, Caller, read};
use crate::activity::{Listener, ListenerView};
use crate::config::{Scope, Site};
use crate::projections::views::{self, WaitingQuery};

/// Waiting orders and studies listed each (oldest first) for a client with the scope `read`.
const LISTED: usize = 20;

/// The path of the page.
pub(super) const PATH: &str = "/status";

/// What the page shows.
#[derive(Debug)]
struct PageData {
    now: Timestamp,
    site: Site,
    uptime_seconds: i64,
    /// The body of `GET /api/v1/status`.
    status: serde_json::Value,
    listeners: Vec<ListenerView>,
    orders: Waiting,
    studies: Waiting,
    disk: Disk,
    /// Answers per minute over the last 24 hours: HL7 messages, DICOM instances.
    messages: Vec<u64>,
    instances: Vec<u64>,
    /// The caller may see patient data (the lists of waiting orders and studies).
    patient_data: bool,
}

/// Orders or studies waiting for a match.
#[derive(Debug, Default)]
struct Waiting {
    count: u64,
    oldest_age_seconds: Option<i64>,
    /// Only for a client with the scope `read`.
    items: Vec<WaitingItem>,
}

#[derive(Debug)]
struct WaitingItem {
    accession: String,
    patient_id: Option<String>,
    patient_name: Option<String>,
    /// The procedure or the modalities.
    what: String,
    age_seconds: i64,
}

/// The disk and where it is heading.
#[derive(Debug, Default)]
struct Disk {
    free: Option<u64>,
    reserve: Option<u64>,
    /// Over the last 24 hours' samples; negative: space was freed.
    consumed_per_second: Option<f64>,
}

impl Disk {
    /// Days until the free space reaches the reserve at the current rate; `None` when it is
    /// not shrinking or there is not enough history yet.
    fn days_left(&self) -> Option<f64> {
        let rate = self.consumed_per_second.filter(|r| *r > 0.0)?;
        let room = self.free?.saturating_sub(self.reserve?);
        Some(room as f64 / rate / 86_400.0)
    }
}

/// `GET /`: to the page.
pub(super) async fn root() -> Redirect {
    Redirect::to(PATH)
}

/// `GET /status`.
pub(super) async fn page(State(state): State<ApiState>, extensions: Extensions) -> Result<Response, ApiError> {
    let patient_data = extensions.get::<Caller>().is_some_and(|c| c.scopes.contains(Scope::Read));
    let data = gather(&state, patient_data).await?;
    if !data.orders.items.is_empty() || !data.studies.items.is_empty() {
        audit_view(&state, &extensions, &data).await?;
    }
    let html = render::page(&data);
    let mut response = html.into_string().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Nothing to load: no script at all, the style inline, the plots inline SVG.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    Ok(response)
}

/// Everything the page shows, now.
async fn gather(state: &ApiState, patient_data: bool) -> Result<PageData, ApiError> {
    let now = Timestamp::now();
    let status = super::sync::status_value(state).await?;
    let reader = state.reader.clone();
    let limit = if patient_data { LISTED } else { 1 };
    let (orders, studies) = read(move || {
        let query = WaitingQuery { now, older_than: None, after: None, limit };
        let (order_count, study_count) = views::waiting_counts(&reader)?;
        let orders = views::unmatched_orders(&reader, &query)?.items;
        let studies = views::unmatched_studies(&reader, &query)?.items;
        Ok((
            Waiting {
                count: order_count,
                oldest_age_seconds: orders.first().map(|o| o.age_seconds),
                items: orders.into_iter().filter(|_| patient_data).map(WaitingItem::of_order).collect(),
            },
            Waiting {
                count: study_count,
                oldest_age_seconds: studies.first().map(|s| s.age_seconds),
                items: studies.into_iter().filter(|_| patient_data).map(WaitingItem::of_study).collect(),
            },
        ))
    })
    .await?;
    let activity = &state.metrics.activity;
    let disk = Disk {
        free: status["disk"]["free"].as_u64(),
        reserve: status["disk"]["reserve"].as_u64(),
        consumed_per_second: activity.disk_consumed_per_second(now),
    };
    Ok(PageData {
        now,
        site: state.reader.site().clone(),
        uptime_seconds: now.as_second().saturating_sub(activity.started.as_second()),
        status,
        listeners: activity.listeners(now),
        orders,
        studies,
        disk,
        messages: activity.per_minute(&Listener::HL7, now),
        instances: activity.per_minute(&Listener::INSTANCES, now),
        patient_data,
    })
}

impl WaitingItem {
    fn of_order(o: views::WaitingOrder) -> WaitingItem {
        let procedure = o.procedure.and_then(|p| p.text.or(p.code));
        let what = [o.modality, procedure].into_iter().flatten().collect::<Vec<_>>().join(" ");
        WaitingItem {
            accession: o.accession_number,
            patient_id: o.patient_id,
            patient_name: o.patient_name,
            what,
            age_seconds: o.age_seconds,
        }
    }

    fn of_study(s: views::WaitingStudy) -> WaitingItem {
        WaitingItem {
            accession: s.accession_number,
            patient_id: s.patient_id,
            patient_name: s.patient_name,
            what: s.modalities.join(" "),
            age_seconds: s.age_seconds,
        }
    }
}

/// Records the page view with the patients it lists (Query) before it is sent; 503 when the
/// record cannot be committed.
async fn audit_view(state: &ApiState, extensions: &Extensions, data: &PageData) -> Result<(), ApiError> {
    let mut ids: Vec<String> = Vec::new();
    for item in data.orders.items.iter().chain(&data.studies.items) {
        if let Some(id) = item.patient_id.as_ref().filter(|id| !ids.contains(id)) {
            ids.push(id.clone());
        }
    }
    let who = super::audit::requester(extensions);
    // The page is a list: recorded as a Query whatever the number of patients on it.
    let path = format!("{PATH}?unmatched");
    let record = crate::audit::kinds::api_read(&state.edge_id, &who, &path, &ids, data.now);
    super::audit::recorded(state, vec![record]).await
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
