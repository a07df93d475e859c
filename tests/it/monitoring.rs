//! The monitoring files shipped in the package (`packaging/grafana/zenedge.json`,
//! `packaging/prometheus/zenedge-rules.yml`) name only metrics the daemon exposes: a
//! dashboard panel or an alert rule on a misspelt or renamed metric shows nothing and never
//! fires, silently. The daemon runs with every part those files watch switched on (TLS
//! identity, a hub, a forwarding destination, scheduled backups; the hub and the archive
//! unreachable, so their failures are counted), takes an HL7 message and a DICOM instance, and its `/metrics` must then hold
//! a sample of every `zenedge_…` name the two files mention (histograms by their `_bucket`,
//! `_sum` and `_count` series).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::certs::Leaf;
use crate::support::dataset::Instance;
use crate::support::hl7msg::{ack_code, orm};
use crate::support::scu::store_all;
use crate::support::tls::EdgeTls;
use crate::support::{TestDaemon, eventually};

const DASHBOARD: &str = include_str!("../../packaging/grafana/zenedge.json");
const RULES: &str = include_str!("../../packaging/prometheus/zenedge-rules.yml");

/// Every `zenedge_…` identifier in `text` (PromQL expressions, and anything else that names
/// a metric), with a histogram's series suffix taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut names = BTreeSet::new();
    let mut at = 0;
    while let Some(found) = text[at..].find("zenedge_") {
        let start = at + found;
        let end = start + bytes[start..].iter().take_while(|b| ident(**b)).count();
        if start == 0 || !ident(bytes[start - 1]) {
            names.insert(series_family(&text[start..end]).to_owned());
        }
        at = end;
    }
    names
}

/// A histogram's `_bucket`/`_sum`/`_count` series as the histogram's name.
fn series_family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// The names of the samples in a Prometheus text exposition (not the `# HELP`/`# TYPE`
/// lines: a family with no sample yet is not exposed).
fn exposed(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|name| series_family(name).to_owned())
        .collect()
}

#[test]
fn the_dashboard_is_json_with_a_query_in_every_panel_and_the_names_are_found() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<_> = panels.iter().filter(|p| p["type"] != "row").collect();
    assert!(queries.len() >= 10, "{} panels", queries.len());
    for panel in queries {
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("no targets: {panel}"));
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].as_str().is_some_and(|e| e.contains("zenedge_")))
        );
    }
    // The scan finds names in both files, histograms by their family.
    let names = metric_names(DASHBOARD);
    assert!(names.contains("zenedge_hl7_messages_total") && names.contains("zenedge_log_commit_seconds"), "{names:?}");
    assert!(metric_names(RULES).contains("zenedge_sync_lag_seconds"));
    assert_eq!(metric_names("x{zenedge_a_bucket} notzenedge_b"), BTreeSet::from(["zenedge_a".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alert_rules_use_is_exposed() {
    // A server certificate that ends in 10 days.
    let tls = EdgeTls::with_server(Leaf { expires_in_days: Some(10), ..Leaf::server() });
    // Ports nothing listens on: the hub and the archive are away.
    let (a, b) =
        (std::net::TcpListener::bind("127.0.0.1:0").unwrap(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let (hub, archive) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
    drop((a, b));
    let backups = tempfile::tempdir().unwrap();
    let d = TestDaemon::start_with(&format!(
        "{}\n[backup]\ndir = {:?}\nschedule = \"every 1h\"\n[sync]\nhub_url = \"http://127.0.0.1:{hub}\"\nallow_plain_http = true\n\
         [[forward.destinations]]\nname = \"central\"\nhost = \"127.0.0.1\"\nport = {archive}\n\
         called_ae = \"CENTRAL\"\nconfirm = \"store\"\nretry_base = \"50ms\"\nretry_cap = \"300ms\"\ntimeout = \"2s\"\n",
        tls.section(""),
        backups.path().display().to_string(),
    ))
    .await;
    let mut c = d.client().await;
    assert_eq!(ack_code(&c.send(&orm("MON-1", "ACC-MON-1")).await), "AA");
    store_all(d.dicom, vec![Instance::ct(40, 1, 1)]).await;

    let mut wanted = metric_names(DASHBOARD);
    wanted.extend(metric_names(RULES));
    let metrics =
        eventually("every metric of the dashboard and the rules on /metrics", Duration::from_secs(30), || async {
            let response = d.get("/metrics").await;
            let missing: Vec<_> = wanted.difference(&exposed(&response.body)).cloned().collect();
            if missing.is_empty() { Ok(response.body) } else { Err(format!("missing {missing:?}")) }
        })
        .await;
    // The certificate's end, as the rule needs it: 10 days ahead (to the day the PKI rounds to).
    let end: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("zenedge_tls_certificate_expiry_timestamp_seconds{certificate=\"tls.cert\"} "))
        .expect("the [tls] certificate's end")
        .parse()
        .unwrap();
    let days = (end - jiff::Timestamp::now().as_second() as f64) / 86400.0;
    assert!((8.5..=10.5).contains(&days), "the certificate ends in {days} days");
    d.stop().await.unwrap();
}
