//! The page's HTML (maud: checked at compile time, every value escaped).
//!
//! Each figure that `GET /api/v1/status` also gives carries `data-status` (its path in that
//! JSON, dot-separated) and `data-value` (the JSON value itself), so a test (or a script)
//! can check the page against the API; the text is the same figure for a person (sizes,
//! marked `data-unit="bytes"`, in binary units).

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::plot;
use super::{PageData, Waiting};
use crate::activity::ListenerView;

/// The page reloads itself this often (seconds).
pub(super) const REFRESH_SECONDS: u32 = 5;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px 16px;color:#1b1f24;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 8px}
.muted{color:#5b6470}.ok{color:#0a7a2f;font-weight:600}.bad{color:#b3261e;font-weight:600}
.warn{color:#8a5a00;font-weight:600}
section{background:#fff;border:1px solid #d8dce2;border-radius:6px;padding:10px 12px;margin:10px 0;min-width:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:0 12px;align-items:start}
table{width:100%;border-collapse:collapse;table-layout:fixed}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eceef1;vertical-align:top;overflow-wrap:anywhere}
th{font-weight:600;color:#3d444d}
td.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}dt{color:#5b6470}
dd{margin:0;overflow-wrap:anywhere;font-variant-numeric:tabular-nums}
figure{margin:10px 0 0}svg{width:100%;height:auto;display:block}
.axis{stroke:#9aa3ad;stroke-width:1}.line{fill:none;stroke:#1f6feb;stroke-width:1.5}
.area{fill:#1f6feb;fill-opacity:.12;stroke:none}.tick{font-size:10px;fill:#5b6470}
";

/// The whole page.
pub(super) fn page(data: &PageData) -> Markup {
    let site = &data.site;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(REFRESH_SECONDS);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "zenedge " (site.edge_id) " status" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "zenedge " span data-status="edge_id" data-value=(Value::from(site.edge_id.as_str())) { (site.edge_id) } }
                    p.muted {
                        "tenant " b { (site.tenant_id) } " · hospital " b { (site.hospital_id) }
                        " · version " b #version { (env!("CARGO_PKG_VERSION")) }
                        " · up " b #uptime { (duration(data.uptime_seconds)) }
                        " · as of " (time(data.now)) " UTC, refreshed every " (REFRESH_SECONDS) " s"
                    }
                }
                (summary(data))
                (listeners(&data.listeners))
                div.grid {
                    (intake(data))
                    (sync(&data.status["sync"]))
                }
                (forwarding(&data.status["forward"]))
                (backups(&data.status["backup"]))
                div.grid {
                    (waiting_section(data))
                    (disk(data))
                }
            }
        }
    }
}

/// What needs an admin's eye, in words (empty: nothing).
pub(super) fn problems(data: &PageData) -> Vec<String> {
    let mut out = Vec::new();
    for l in data.listeners.iter().filter(|l| !l.up) {
        out.push(format!("the {} listener is down", l.listener.title()));
    }
    let sync = &data.status["sync"];
    if sync["enabled"] == Value::Bool(true) {
        if sync["diverged"].is_object() {
            out.push("the hub sync stopped: the hub holds another history of this edge".into());
        }
        if sync["breaker"].as_str().is_some_and(|b| b != "closed") {
            out.push(format!("the hub sync's breaker is {}", text(&sync["breaker"])));
        }
        if let Some(n) = sync["dead_letters"].as_u64().filter(|n| *n > 0) {
            out.push(format!("{n} dead letter(s) of the hub sync wait for an operator"));
        }
    }
    for d in data.status["forward"].as_array().into_iter().flatten() {
        let open = d["dead_letters"]["parked"].as_u64().unwrap_or(0) + d["dead_letters"]["retry"].as_u64().unwrap_or(0);
        if open > 0 {
            out.push(format!("{open} dead letter(s) of forwarding to {} wait for an operator", text(&d["name"])));
        }
        if d["breaker"].as_str().is_some_and(|b| b != "closed") {
            out.push(format!("forwarding to {}: breaker {}", text(&d["name"]), text(&d["breaker"])));
        }
    }
    out.extend(backup_problem(&data.status["backup"]));
    if data.status["disk"]["below_reserve"] == Value::Bool(true) {
        out.push("free disk space is below the reserve: new data is refused".into());
    } else if let Some(days) = data.disk.days_left().filter(|d| *d < 2.0) {
        out.push(format!("the disk reserve is reached in {days:.1} days at the last 24 hours' rate"));
    }
    out
}

/// One line that says whether anything needs attention.
fn summary(data: &PageData) -> Markup {
    let problems = problems(data);
    html! {
        @if problems.is_empty() {
            p #summary.ok { "Nothing needs attention." }
        } @else {
            section #summary {
                h2.bad { "Needs attention" }
                ul { @for p in &problems { li { (p) } } }
            }
        }
    }
}

/// A figure of `/api/v1/status` at `path` (dot-separated), shown as is.
fn figure(status: &Value, path: &str) -> Markup {
    let value = path.split('.').fold(status, |v, key| &v[key]);
    let text = match value {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    html! { span data-status=(path) data-value=(value.to_string()) { (text) } }
}

fn listeners(listeners: &[ListenerView]) -> Markup {
    html! {
        section #listeners {
            h2 { "Listeners" }
            @if listeners.is_empty() {
                p.muted { "No listener is configured." }
            } @else {
                table {
                    colgroup { col style="width:13%"; col style="width:15%"; col style="width:8%"; col style="width:16%";
                        col style="width:9%"; col style="width:9%"; col style="width:9%"; col; }
                    thead { tr { th { "Listener" } th { "Address" } th { "State" } th { "Last answer" }
                        th { "Last hour" } th { "Last 24 h" } th { "Negative (24 h)" } th { "Last error" } } }
                    tbody {
                        @for l in listeners {
                            tr data-listener=(l.listener.name()) {
                                td { (l.listener.title()) br; span.muted { (l.listener.unit()) } }
                                td { code { (l.address) } }
                                td { @if l.up { span.ok { "up" } } @else { span.bad { "down" } } }
                                td { (optional_time(l.last_answer_at)) }
                                td.n data-field="last_hour" { (l.last_hour) }
                                td.n data-field="last_day" { (l.last_day) }
                                td.n data-field="negative_last_day" {
                                    @if l.negative_last_day > 0 { span.warn { (l.negative_last_day) } } @else { "0" }
                                }
                                td {
                                    @match &l.last_error {
                                        Some(e) => { span.muted { (time(e.at)) } br; (e.text) },
                                        None => span.muted { "none since the start" },
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn intake(data: &PageData) -> Markup {
    let s = &data.status;
    let by_ack = s["ingest"]["hl7_messages"].as_object().cloned().unwrap_or_default();
    html! {
        section #intake {
            h2 { "Intake" }
            dl {
                dt { "Last sequence number" } dd { (figure(s, "last_seq")) }
                dt { "HL7 messages stored" } dd { (figure(s, "stored.hl7_messages")) }
                dt { "DICOM instances stored" } dd { (figure(s, "stored.dicom_instances")) }
                dt { "Studies (completed)" } dd { (figure(s, "stored.studies")) " (" (figure(s, "stored.studies_completed")) ")" }
                dt { "HL7 answers since start" } dd {
                    @if by_ack.is_empty() { "none" }
                    @for (i, ack) in by_ack.keys().enumerate() {
                        @if i > 0 { ", " }
                        (ack) " " (figure(s, &format!("ingest.hl7_messages.{ack}")))
                    }
                }
                dt { "Instances since start" } dd { (figure(s, "ingest.dicom_instances_stored")) }
                dt { "Studies completed since start" } dd { (figure(s, "ingest.studies_completed")) }
            }
            (plot::plot("messages", "HL7 messages", &data.messages))
            (plot::plot("instances", "DICOM instances", &data.instances))
        }
    }
}

fn sync(sync: &Value) -> Markup {
    let root = serde_json::json!({ "sync": sync });
    let s = |path: &str| figure(&root, path);
    let breaker = sync["breaker"].as_str().unwrap_or("");
    let dead = sync["dead_letters"].as_u64().unwrap_or(0);
    html! {
        section #sync {
            h2 { "Hub sync" }
            @if sync["enabled"] != Value::Bool(true) {
                p.muted { "Off: no " code { "sync.hub_url" } " is configured." }
            } @else {
                dl {
                    dt { "Hub" } dd { code { (s("sync.hub_url")) } }
                    dt { "Cursor" } dd { (s("sync.cursor")) }
                    dt { "Behind by" } dd { (s("sync.lag_events")) " events, " (seconds(sync["lag_seconds"].as_f64())) }
                    dt { "Breaker" } dd class=(if breaker == "closed" { "ok" } else { "bad" }) { (s("sync.breaker")) }
                    dt { "Last success" } dd { (s("sync.last_success_at")) }
                    dt { "Dead letters" } dd class=(if dead > 0 { "bad" } else { "" }) { (s("sync.dead_letters")) }
                    @if let Some(error) = sync["last_error"].as_str() {
                        dt { "Last error" } dd {
                            (error) br;
                            span.muted { "at " (text(&sync["last_error_at"])) ", "
                                @if sync["last_error_cleared_at"].is_string() { "cleared at " (text(&sync["last_error_cleared_at"])) } @else { "still failing" } }
                        }
                    }
                    @if sync["diverged"].is_object() {
                        dt { "Stopped" } dd.bad { "the hub holds another history of this edge: see zenedge status" }
                    }
                }
            }
        }
    }
}

fn forwarding(destinations: &Value) -> Markup {
    let Some(list) = destinations.as_array().filter(|l| !l.is_empty()) else { return html! {} };
    html! {
        section #forwarding {
            h2 { "Forwarding to archives" }
            table {
                thead { tr { th { "Destination" } th { "Cursor" } th { "Behind" } th { "Breaker" }
                    th { "Dead letters" } th { "Last confirmation" } th { "Last error" } } }
                tbody {
                    @for (i, d) in list.iter().enumerate() {
                        @let root = serde_json::json!({ "forward": destinations });
                        @let f = |key: &str| figure(&root, &format!("forward.{i}.{key}"));
                        tr {
                            td { (text(&d["name"])) @if d["required"] == Value::Bool(true) { br; span.muted { "required" } } }
                            td.n { (f("cursor")) }
                            td { (f("lag_instances")) " instances, " (seconds(d["lag_seconds"].as_f64())) }
                            td { (f("breaker")) }
                            td { (f("dead_letters.parked")) " parked, " (f("dead_letters.retry")) " to retry" }
                            td { (f("last_confirmed_at")) }
                            td { (text(&d["last_error"])) }
                        }
                    }
                }
            }
        }
    }
}

/// The scheduled backups (`/api/v1/status`'s `backup`): schedule, next run, last success and
/// last failure.
fn backups(backup: &Value) -> Markup {
    let root = serde_json::json!({ "backup": backup });
    let f = |key: &str| figure(&root, &format!("backup.{key}"));
    html! {
        section #backups {
            h2 { "Backups" }
            @if backup["enabled"] != Value::Bool(true) {
                p.muted { "No scheduled backups: [backup] dir is not set." }
            } @else {
                p { "Into " (text(&backup["dir"])) ", " (text(&backup["schedule"])) ", kept " (text(&backup["keep"]))
                    "; next " (f("next_at")) }
                p { "Last success: " (f("last_success.at")) " " span.muted { (text(&backup["last_success"]["name"])) } }
                @if backup["last_failure"].is_object() {
                    p class=(if backup["failing"] == Value::Bool(true) { "bad" } else { "muted" }) {
                        "Last failure: " (f("last_failure.at")) ": " (text(&backup["last_failure"]["reason"]))
                    }
                }
            }
        }
    }
}

/// The scheduled backups' problem, if the last one failed.
fn backup_problem(backup: &Value) -> Option<String> {
    (backup["failing"] == Value::Bool(true))
        .then(|| format!("the last scheduled backup failed: {}", text(&backup["last_failure"]["reason"])))
}

fn waiting_section(data: &PageData) -> Markup {
    html! {
        section #unmatched {
            h2 { "Waiting for a match" }
            dl {
                dt { "Orders without a study" } dd { (waiting_line("orders", &data.orders)) }
                dt { "Studies without an order" } dd { (waiting_line("studies", &data.studies)) }
            }
            @if data.patient_data {
                (waiting_list("Orders", &data.orders))
                (waiting_list("Studies", &data.studies))
            } @else {
                p.muted { "Patients are listed here for a client with the scope \"read\"." }
            }
        }
    }
}

fn waiting_line(name: &str, w: &Waiting) -> Markup {
    html! {
        span data-waiting=(name) { (w.count) }
        @if let Some(age) = w.oldest_age_seconds { ", the oldest for " (duration(age)) }
    }
}

fn waiting_list(title: &str, w: &Waiting) -> Markup {
    if w.items.is_empty() {
        return html! {};
    }
    html! {
        h3 { (title) " (oldest " (w.items.len()) ")" }
        table.patients {
            thead { tr { th { "Accession" } th { "Patient id" } th { "Patient" } th { "What" } th { "Waiting" } } }
            tbody {
                @for item in &w.items {
                    tr {
                        td { (item.accession) }
                        td { (item.patient_id.as_deref().unwrap_or("–")) }
                        td { (item.patient_name.as_deref().unwrap_or("–")) }
                        td { (item.what) }
                        td { (duration(item.age_seconds)) }
                    }
                }
            }
        }
    }
}

fn disk(data: &PageData) -> Markup {
    let d = &data.disk;
    let below = data.status["disk"]["below_reserve"] == Value::Bool(true);
    html! {
        section #disk {
            h2 { "Disk" }
            dl {
                dt { "Free" } dd class=(if below { "bad" } else { "" }) {
                    span data-status="disk.free" data-unit="bytes" data-value=(data.status["disk"]["free"].to_string()) { (bytes(d.free)) }
                    @if below { " — below the reserve: new data is refused" }
                }
                dt { "Reserve" } dd {
                    span data-status="disk.reserve" data-unit="bytes" data-value=(data.status["disk"]["reserve"].to_string()) { (bytes(d.reserve)) }
                }
                dt { "Use, last 24 h" } dd {
                    @match d.consumed_per_second {
                        Some(rate) if rate >= 0.0 => { (bytes(Some((rate * 86_400.0) as u64))) " a day" },
                        Some(rate) => { (bytes(Some((-rate * 86_400.0) as u64))) " a day freed" },
                        None => span.muted { "not enough history yet (10 minutes of samples)" },
                    }
                }
                dt { "Reserve reached in" } dd #days-left {
                    @match (d.days_left(), d.consumed_per_second) {
                        (Some(days), _) => span class=(if days < 2.0 { "bad" } else if days < 14.0 { "warn" } else { "ok" }) {
                            (format!("{days:.1}")) " days at this rate"
                        },
                        (None, Some(_)) => span.ok { "not at this rate (free space is not shrinking)" },
                        (None, None) => span.muted { "–" },
                    }
                }
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn optional_time(at: Option<Timestamp>) -> Markup {
    match at {
        Some(at) => html! { (time(at)) },
        None => html! { span.muted { "none since the start" } },
    }
}

/// `42 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub(super) fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) => duration(s.round() as i64),
        None => "–".into(),
    }
}

fn bytes(n: Option<u64>) -> String {
    match n {
        Some(n) => bytesize::ByteSize(n).to_string(),
        None => "–".into(),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
