//! The status page through the router: who may see it and how a browser authenticates, that
//! its figures are those of `/api/v1/status`, and that patient data appears only for a
//! client with the scope `read` (and is audited then).

use axum::http::{StatusCode, header};
use base64::Engine as _;

use super::super::test_api::{ALL, READ, STATUS, api, call, call_full};
use crate::activity::Listener;
use crate::domain::test_support::{Order, Study};

fn basic(password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}")))
}

async fn html(state: &super::ApiState, authorization: &str) -> String {
    let (status, headers, body) = call_full(state, "GET", "/status", Some(authorization)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    String::from_utf8(body).unwrap()
}

/// Every `data-status` path of the page with its `data-value`.
fn figures(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for piece in html.split("data-status=\"").skip(1) {
        let (path, rest) = piece.split_once('"').unwrap();
        let value = rest.split_once("data-value=\"").unwrap().1.split_once('"').unwrap().0;
        out.push((path.to_owned(), value.replace("&quot;", "\"")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_a_browser_for_basic_credentials_and_takes_the_token_as_password() {
    let a = api(None).await;
    let (status, headers, _) = call_full(&a.state, "GET", "/status", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"zenedge\", charset=\"UTF-8\"");
    let page = html(&a.state, &basic(STATUS)).await;
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "{page}");
    assert!(html(&a.state, &format!("Bearer {STATUS}")).await.contains("Hub sync"));
    let (status, headers, _) = call_full(&a.state, "GET", "/status", Some(&basic("not-a-client-token-0000"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"), "the browser asks again");
    let (status, _, body) = call_full(&a.state, "GET", "/status", Some(&basic(READ))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the scope status is needed");
    assert!(String::from_utf8_lossy(&body).contains("\\\"status\\\""), "{}", String::from_utf8_lossy(&body));
    // The API itself takes no Basic credentials and does not make a browser ask for them.
    let (status, headers, _) = call_full(&a.state, "GET", "/api/v1/status", Some(&basic(STATUS))).await;
    assert_eq!((status, &headers[header::WWW_AUTHENTICATE]), (StatusCode::UNAUTHORIZED, &"Bearer".parse().unwrap()));
    let (status, headers, _) = call_full(&a.state, "GET", "/", Some(&basic(STATUS))).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(headers[header::LOCATION], "/status");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_figures_of_api_status() {
    let a = api(None).await;
    let handle = a.log.handle();
    crate::domain::hl7::store(&handle, Order::new("C1", "P1", "ACC-1", &["PID-1"]).event()).await.unwrap();
    a.state.metrics.hl7_answered("ORM^O01", "AA");
    Study::new("1.2.3", "ACC-2", "PID-2").arrive(&a.log, 2).await;
    let page = html(&a.state, &format!("Bearer {STATUS}")).await;
    let (_, status) = call(&a.state, "GET", "/api/v1/status", Some(STATUS)).await;
    let found = figures(&page);
    for path in ["last_seq", "stored.hl7_messages", "stored.dicom_instances", "ingest.hl7_messages.AA", "sync.cursor"] {
        assert!(found.iter().any(|(p, _)| p == path), "{path} is on the page");
    }
    for (path, value) in &found {
        if path == "disk.free" {
            continue; // other tests write to the same disk meanwhile
        }
        let expected = path.split('.').fold(&status, |v, key| &v[key]);
        assert_eq!(value, &expected.to_string(), "{path}");
    }
    assert_eq!(status["stored"]["hl7_messages"], 1);
    assert_eq!(status["stored"]["dicom_instances"], 2);
    assert!(page.contains(r#"<span data-waiting="orders">1</span>"#), "{page}");
    assert!(page.contains(r#"<span data-waiting="studies">1</span>"#), "{page}");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patients_are_on_the_page_only_for_a_client_with_the_read_scope_and_that_view_is_audited() {
    let a = api(None).await;
    let handle = a.log.handle();
    let order = Order::new("C1", "P1", "ACC-<9>", &["PID-77"]);
    crate::domain::hl7::store(&handle, order.event()).await.unwrap();
    Study::new("1.2.3", "ACC-8", "PID-88").arrive(&a.log, 1).await;
    let audited = |a: &super::super::test_api::Api| crate::audit::page(&a.log.reader(), 0, 1000).unwrap().len();
    let before = audited(&a);
    let page = html(&a.state, &basic(STATUS)).await;
    for secret in ["PID-77", "PID-88", "Doe", "Jane", "ACC-8", "ACC-"] {
        assert!(!page.contains(secret), "{secret} without the scope read");
    }
    assert_eq!(audited(&a), before, "no patient data, nothing to audit");
    let page = html(&a.state, &basic(ALL)).await;
    for shown in ["PID-77", "PID-88", "Doe", "ACC-8", "ACC-&lt;9&gt;"] {
        assert!(page.contains(shown), "{shown} with the scope read");
    }
    assert!(!page.contains("ACC-<9>"), "escaped");
    let records = crate::audit::page(&a.log.reader(), 0, 1000).unwrap();
    assert_eq!(records.len(), before + 1, "the view with patients is audited");
    let text = serde_json::to_string(&records.last().unwrap().record).unwrap();
    assert!(text.contains("PID-77") && text.contains("PID-88") && text.contains("/status"), "{text}");
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_show_their_address_state_counts_and_last_error() {
    let a = api(None).await;
    let activity = &a.state.metrics.activity;
    activity.opened(Listener::Mllp, "127.0.0.1:2575");
    activity.opened(Listener::DicomTls, "127.0.0.1:2762");
    activity.answered(Listener::Mllp, None);
    activity.answered(Listener::Mllp, Some("AR: message not stored: <disk> reserve"));
    activity.closed(Listener::DicomTls);
    let page = html(&a.state, &basic(STATUS)).await;
    let row = |name: &str| {
        let start = page.find(&format!("data-listener=\"{name}\"")).unwrap_or_else(|| panic!("{name}: {page}"));
        page[start..].split("</tr>").next().unwrap().to_owned()
    };
    let mllp = row("mllp");
    assert!(mllp.contains("127.0.0.1:2575") && mllp.contains(">up<"), "{mllp}");
    assert!(mllp.contains(r#"data-field="last_hour">2<"#), "{mllp}");
    assert!(mllp.contains("AR: message not stored: &lt;disk&gt; reserve"), "{mllp}");
    assert!(row("dicom_tls").contains(">down<"));
    assert!(!page.contains("data-listener=\"dicom\""), "not configured: not shown");
    assert_eq!(page.matches("data-plot=").count(), 2);
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_basic_password_is_audited_and_rate_limited_like_a_wrong_bearer_token() {
    let a = super::super::test_api::api_with("auth_failures_per_minute = 2\n").await;
    let trail = |a: &super::super::test_api::Api| crate::audit::page(&a.log.reader(), 0, 1000).unwrap();
    let before = trail(&a).len();
    for _ in 0..2 {
        let (status, _, _) = call_full(&a.state, "GET", "/status", Some(&basic("guessed-token-000000000"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let records = trail(&a);
    assert_eq!(records.len(), before + 2, "each failure is in the audit trail");
    let text = serde_json::to_string(&records.last().unwrap().record).unwrap();
    assert!(text.contains("/status"), "{text}");
    let (status, headers, _) = call_full(&a.state, "GET", "/status", Some(&basic(STATUS))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "past the limit even the right password waits");
    assert!(headers.contains_key(header::RETRY_AFTER));
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_nothing_from_elsewhere_and_runs_no_script() {
    let a = api(None).await;
    let (_, headers, body) = call_full(&a.state, "GET", "/status", Some(&basic(STATUS))).await;
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let page = String::from_utf8(body).unwrap();
    for outside in ["<script", "src=", "href=\"http", "@import", "url("] {
        assert!(!page.contains(outside), "{outside}");
    }
    a.log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_days_until_the_reserve_follow_the_last_day_of_disk_samples() {
    let a = api(None).await;
    let page = html(&a.state, &basic(STATUS)).await;
    assert!(page.contains("not enough history yet"), "{page}");
    let now = jiff::Timestamp::now();
    let activity = &a.state.metrics.activity;
    let gib = 1u64 << 30;
    activity.disk_free_at(now - jiff::SignedDuration::from_mins(100), 1000 * gib);
    activity.disk_free_at(now, 1000 * gib - 100 * (1 << 20));
    let page = html(&a.state, &basic(STATUS)).await;
    assert!(page.contains("1.4 GiB a day"), "100 MiB in 100 minutes: {page}");
    assert!(page.contains("days at this rate"), "{page}");
    a.log.close().await.unwrap();
}

#[test]
fn days_left_is_the_room_above_the_reserve_over_the_rate() {
    let disk =
        |free, reserve, rate| super::Disk { free: Some(free), reserve: Some(reserve), consumed_per_second: rate };
    assert_eq!(disk(86_400 * 10 + 500, 500, Some(1.0)).days_left(), Some(10.0));
    assert_eq!(disk(100, 500, Some(1.0)).days_left(), Some(0.0), "already below: none left");
    assert_eq!(disk(100, 0, Some(-3.0)).days_left(), None, "space is freed");
    assert_eq!(disk(100, 0, None).days_left(), None, "no history yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_needs_attention_is_said_at_the_top() {
    let a = api(None).await;
    a.state.metrics.activity.opened(Listener::Mllp, "127.0.0.1:2575");
    let page = html(&a.state, &basic(STATUS)).await;
    assert!(page.contains("Nothing needs attention."), "{page}");
    crate::sync::dead_letters::park(&a.log.handle(), 1, "X".into(), "422: bad".into()).await.unwrap();
    a.state.metrics.activity.closed(Listener::Mllp);
    let page = html(&a.state, &basic(STATUS)).await;
    assert!(page.contains("<li>the MLLP listener is down</li>"), "{page}");
    assert!(page.contains("<li>1 dead letter(s) of the hub sync wait for an operator</li>"), "{page}");
    a.log.close().await.unwrap();
}
