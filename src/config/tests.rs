//! The configuration's contract: defaults, units, and every problem reported with its key.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

const MINIMAL: &str = "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n";

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(text) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

/// Found by the `config_toml` fuzz target
/// (fuzz/regressions/config_toml/log-level-field-regex): checking this `log_level` took
/// minutes, compiling a field filter's value into a regular expression.
#[test]
fn a_log_level_with_span_or_field_filters_is_refused_without_compiling_it() {
    let text = include_str!("../../fuzz/regressions/config_toml/log-level-field-regex");
    let problems = problems(text);
    let log_level = problems.iter().find(|p| p.key == "daemon.log_level").expect("a log_level problem");
    assert!(log_level.reason.contains("span and field filters ([...]) are not accepted"), "{log_level:?}");
    let config = Config::from_toml(&format!("{MINIMAL}[daemon]\nlog_level = \"info,zenedge::sync=debug\"\n"));
    assert_eq!(config.unwrap().daemon.log_level, "info,zenedge::sync=debug");
}

#[test]
fn audit_syslog_takes_udp_or_tls_with_host_and_port_and_tls_needs_the_syncs_identity() {
    let udp = Config::from_toml(&format!("{MINIMAL}[audit]\nsyslog = \"udp://collector.example:514\"\n")).unwrap();
    assert_eq!(udp.audit.syslog, Some(SyslogTarget::Udp { host: "collector.example".into(), port: 514 }));
    assert_eq!(udp.audit.syslog.unwrap().address(), "collector.example:514");
    let sync = "[sync]\nhub_url = \"https://hub.example\"\nca_file = \"ca.pem\"\nclient_cert = \"c.pem\"\nclient_key = \"k.pem\"\n";
    let tls = Config::from_toml(&format!("{MINIMAL}{sync}[audit]\nsyslog = \"tls://[::1]:6514\"\n")).unwrap();
    assert_eq!(tls.audit.syslog, Some(SyslogTarget::Tls { host: "::1".into(), port: 6514 }));
    assert_eq!(tls.audit.syslog.unwrap().address(), "[::1]:6514");
    assert_eq!(Config::from_toml(MINIMAL).unwrap().audit.syslog, None);
    for bad in
        ["tls://collector:6514", "collector:514", "udp://collector", "udp://:514", "tcp://collector:514", "udp://c:0"]
    {
        let found = problems(&format!("{MINIMAL}[audit]\nsyslog = {bad:?}\n"));
        assert_eq!(found.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["audit.syslog"], "{bad}");
    }
}

#[test]
fn dicom_flush_is_shared_by_default_each_on_request_and_nothing_else() {
    assert_eq!(Config::from_toml(MINIMAL).unwrap().dicom.flush, FlushMode::Shared);
    let each = Config::from_toml(&format!("{MINIMAL}[dicom]\nflush = \"each\"\n")).unwrap();
    assert_eq!(each.dicom.flush, FlushMode::Each);
    let found = problems(&format!("{MINIMAL}[dicom]\nflush = \"never\"\n"));
    assert_eq!(found.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["dicom.flush"]);
}

#[test]
fn retention_takes_days_and_refuses_a_zero_age() {
    let config =
        Config::from_toml(&format!("{MINIMAL}[retention]\ndicom_max_age = \"90d\"\ninterval = \"10m\"\n")).unwrap();
    assert_eq!(config.retention.dicom_max_age, Some(Duration::from_secs(90 * 24 * 3600)));
    assert_eq!(config.retention.dicom_max_age_text, "90d");
    assert_eq!(config.retention.interval, Duration::from_secs(600));
    let found = problems(&format!("{MINIMAL}[retention]\ndicom_max_age = \"0s\"\ninterval = \"soon\"\n"));
    let keys: Vec<_> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["retention.dicom_max_age", "retention.interval"]);
}

#[test]
fn example_config_parses_with_its_documented_defaults() {
    let text = include_str!("../../config.example.toml");
    let config = Config::from_toml(text).expect("config.example.toml must be valid");
    let defaults = Config::from_toml(MINIMAL).unwrap();
    assert_eq!(config.mllp.listen, defaults.mllp.listen);
    assert_eq!(config.mllp.max_message_bytes, 16 << 20);
    assert_eq!(config.mllp.idle_timeout, Duration::from_secs(300));
    assert_eq!(config.mllp.frame_timeout, Duration::from_secs(120));
    assert_eq!(config.mllp.frame_timeout, defaults.mllp.frame_timeout);
    assert_eq!(config.store.state_dir, PathBuf::from("./data"));
    assert_eq!(config.store.disk_reserve, defaults.store.disk_reserve);
    assert_eq!(config.store.queue_depth, defaults.store.queue_depth);
    assert_eq!(config.store.max_batch, defaults.store.max_batch);
    assert_eq!(config.store.cache_size, defaults.store.cache_size);
    assert_eq!(config.mllp.accession_from, defaults.mllp.accession_from);
    assert_eq!(config.mllp.fallback_charset, defaults.mllp.fallback_charset);
    assert_eq!(config.mllp.max_connections, defaults.mllp.max_connections);
    assert_eq!(config.http.listen, defaults.http.listen);
    assert_eq!(config.dicom.listen, defaults.dicom.listen);
    assert_eq!(config.dicom.ae_title, defaults.dicom.ae_title);
    assert_eq!(config.dicom.accept_any_called_ae, defaults.dicom.accept_any_called_ae);
    assert_eq!(config.dicom.calling_ae_allow, defaults.dicom.calling_ae_allow);
    assert_eq!(config.dicom.accept_unknown_sop_classes, defaults.dicom.accept_unknown_sop_classes);
    assert_eq!(config.dicom.max_associations, defaults.dicom.max_associations);
    assert_eq!(config.dicom.max_pdu_length, defaults.dicom.max_pdu_length);
    assert_eq!(config.dicom.read_timeout, defaults.dicom.read_timeout);
    assert_eq!(config.dicom.pdu_timeout, Duration::from_secs(120));
    assert_eq!(config.dicom.pdu_timeout, defaults.dicom.pdu_timeout);
    assert_eq!(config.http.header_timeout, Duration::from_secs(30));
    assert_eq!(config.http.header_timeout, defaults.http.header_timeout);
    assert_eq!(config.dicom.write_timeout, defaults.dicom.write_timeout);
    assert_eq!(config.dicom.stable_after, Duration::from_secs(60));
    assert_eq!(config.matching.consolidation_window, Duration::from_secs(24 * 3600));
    assert_eq!(config.matching.consolidation_window_for("hospital-1"), config.matching.consolidation_window);
    assert_eq!(config.daemon.shutdown_grace, defaults.daemon.shutdown_grace);
    assert_eq!(config.daemon.log_level, defaults.daemon.log_level);
    assert_eq!(config.retention, defaults.retention);
    assert_eq!(config.retention.dicom_max_age, None, "retention is off by default");
    assert_eq!(config.retention.interval, Duration::from_secs(3600));
    assert!(config.forward.destinations.is_empty(), "no forwarding destination by default");
}

#[test]
fn a_forwarding_destination_takes_its_defaults_and_our_ae_title() {
    let text = format!(
        "{MINIMAL}[[forward.destinations]]\nname = \"central\"\nhost = \"pacs\"\ncalled_ae = \"CENTRAL\"\n\
         confirm = \"store\"\n"
    );
    let config = Config::from_toml(&text).unwrap();
    let d = &config.forward.destinations[0];
    assert_eq!((d.name.as_str(), d.host.as_str(), d.port), ("central", "pacs", 104));
    assert_eq!((d.called_ae.as_str(), d.calling_ae.as_str()), ("CENTRAL", config.dicom.ae_title.as_str()));
    assert_eq!((d.confirm, d.required, d.associations, d.batch), (crate::config::Confirm::Store, true, 2, 64));
    assert_eq!((d.max_pdu, d.timeout), (64 * 1024, Duration::from_secs(30)));
    assert_eq!(config.forward.required(), ["central"]);
    assert!(config.dicom.commitment_archives.is_empty(), "no commitment: the SCP takes no reports");
}

#[test]
fn a_destination_confirms_by_storage_commitment_by_default_and_the_scp_takes_its_reports() {
    let text =
        format!("{MINIMAL}[[forward.destinations]]\nname = \"central\"\nhost = \"pacs\"\ncalled_ae = \"CENTRAL\"\n");
    let config = Config::from_toml(&text).unwrap();
    let d = &config.forward.destinations[0];
    assert_eq!((d.confirm, d.commitment_timeout), (crate::config::Confirm::Commitment, Duration::from_secs(300)));
    assert_eq!(config.dicom.commitment_archives, [("central".to_owned(), "CENTRAL".to_owned())]);
}

#[test]
fn a_forwarding_destination_this_version_cannot_serve_is_refused_not_ignored() {
    let text = format!(
        "{MINIMAL}[[forward.destinations]]\nname = \"a\"\nhost = \"pacs\"\ncalled_ae = \"CENTRAL\"\nconfirm = \"trust\"\n\
         [[forward.destinations]]\nname = \"a\"\nkind = \"stow\"\nhost = \"\"\ncalled_ae = \"C\"\nconfirm = \"store\"\n\
         associations = 0\nmax_pdu = \"1KiB\"\n"
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "forward.destinations[0].confirm",
            "forward.destinations[1].name",
            "forward.destinations[1].kind",
            "forward.destinations[1].host",
            "forward.destinations[1].associations",
            "forward.destinations[1].max_pdu",
        ]
    );
}

#[test]
fn per_frame_pdu_and_header_deadlines_must_be_longer_than_zero() {
    let text = format!(
        "{MINIMAL}[mllp]\nframe_timeout = \"0s\"\n[dicom]\npdu_timeout = \"0ms\"\n[http]\nheader_timeout = \"soon\"\n"
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["mllp.frame_timeout", "dicom.pdu_timeout", "http.header_timeout"]);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = Config::from_toml(&format!("{MINIMAL}[mllp]\nlisten_port = 1\n")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("listen_port"), "{text}");
}

#[test]
fn missing_site_identity_is_an_error() {
    let err = Config::from_toml("[mllp]\n").unwrap_err();
    assert!(err.to_string().contains("site"), "{err}");
}

#[test]
fn every_bad_value_is_reported_with_its_key() {
    let text = format!(
        "{MINIMAL}[mllp]\nidle_timeout = \"5 fortnights\"\nlisten = \"nowhere\"\naccession_from = [\"OBR\"]\n\
         [store]\ndisk_reserve = \"150%\"\n"
    );
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["store.disk_reserve", "mllp.listen", "mllp.idle_timeout", "mllp.accession_from[0]"]);
}

#[test]
fn calling_ae_entries_take_an_optional_address_or_network() {
    let text = format!("{MINIMAL}[dicom]\ncalling_ae_allow = [\"CT01\", \"MR02@192.0.2.7\", \"US03@192.0.2.0/24\"]\n");
    let allow = Config::from_toml(&text).unwrap().dicom.calling_ae_allow;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert!(allow[0].matches("CT01", ip("198.51.100.1")));
    assert!(allow[1].matches("MR02", ip("192.0.2.7")) && !allow[1].matches("MR02", ip("192.0.2.8")));
    assert!(allow[2].matches("US03", ip("192.0.2.200")) && !allow[2].matches("CT01", ip("192.0.2.200")));
    let bad =
        format!("{MINIMAL}[dicom]\ncalling_ae_allow = [\"X@nowhere\"]\nae_title = \"THIS TITLE IS WAY TOO LONG\"\n");
    let keys: Vec<String> = problems(&bad).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["dicom.ae_title", "dicom.calling_ae_allow[0]"]);
}

#[test]
fn site_identifiers_are_restricted_to_a_safe_alphabet() {
    let text = "[site]\ntenant_id = \"t/1\"\nhospital_id = \"\"\nedge_id = \"e\"\n";
    let keys: Vec<String> = problems(text).into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["site.tenant_id", "site.hospital_id"]);
}

/// One run reports every problem of every kind: an unknown section, unknown keys, values of
/// the wrong TOML type, a missing site key, each bad allow-list entry, and bad values next
/// to them. Each key keeps its default meanwhile, so none earns a second, derived problem.
#[test]
fn every_problem_of_a_file_is_reported_in_one_run_with_its_key() {
    let text = "[site]\ntenant_id = \"t\"\nhospital_id = 7\n\
                [mlp]\nlisten = \"127.0.0.1:2575\"\n\
                [mllp]\nlisten_port = 2575\nidle_timeout = 300\nmax_connections = \"many\"\nframe_timeout = \"soon\"\n\
                [dicom]\ncalling_ae_allow = [\"CT01\", \"X@nowhere\", \"MR02\", \"THIS TITLE IS WAY TOO LONG\"]\n\
                stable_after = 60\naccept_any_called_ae = \"yes\"\n\
                [http]\nlisten = \"localhost\"\ntimeout = \"30s\"\n\
                [sync]\nbatch_max_bytes = 4194304\n";
    let found = problems(text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "mlp",
            "site.hospital_id",
            "site.edge_id",
            "mllp.idle_timeout",
            "mllp.listen_port",
            "mllp.max_connections",
            "dicom.accept_any_called_ae",
            "dicom.stable_after",
            "http.timeout",
            "sync.batch_max_bytes",
            "mllp.frame_timeout",
            "dicom.calling_ae_allow[1]",
            "dicom.calling_ae_allow[3]",
            "http.listen",
        ]
    );
    let reason = |key: &str| found.iter().find(|p| p.key == key).unwrap().reason.clone();
    assert!(reason("mlp").contains("unknown section"), "{}", reason("mlp"));
    assert!(reason("mllp.listen_port").contains("unknown key; [mllp] takes"), "{}", reason("mllp.listen_port"));
    assert!(reason("mllp.listen_port").contains("idle_timeout"), "the known keys are listed");
    assert_eq!(reason("site.edge_id"), "missing (required)");
    assert!(reason("site.hospital_id").contains("must be a string, not an integer (7)"));
    assert!(reason("mllp.max_connections").contains("must be an integer, not a string (\"many\")"));
    assert!(reason("dicom.accept_any_called_ae").contains("must be true or false"));
}

/// `idle_timeout = 300` says that durations are strings, and how to write this one; a bare
/// number of bytes for a size says the same of sizes.
#[test]
fn a_number_where_a_duration_or_size_goes_is_answered_with_how_to_write_it() {
    let found = problems(&format!(
        "{MINIMAL}[mllp]\nidle_timeout = 300\nmax_message_bytes = 16777216\n[retention]\ndicom_max_age = 90\n"
    ));
    let idle = &found.iter().find(|p| p.key == "mllp.idle_timeout").unwrap().reason;
    assert!(idle.contains("must be a string, not an integer (300)"), "{idle}");
    assert!(idle.contains("durations are strings with a unit: idle_timeout = \"300s\""), "{idle}");
    let size = &found.iter().find(|p| p.key == "mllp.max_message_bytes").unwrap().reason;
    assert!(size.contains("sizes are strings with a binary unit") && size.contains("\"16777216\""), "{size}");
    let age = &found.iter().find(|p| p.key == "retention.dicom_max_age").unwrap().reason;
    assert!(age.contains("durations are strings"), "{age}");
}

#[test]
fn a_decimal_size_is_refused_with_the_binary_spelling() {
    let found = problems(&format!("{MINIMAL}[mllp]\nmax_message_bytes = \"16MB\"\n"));
    assert_eq!(found[0].key, "mllp.max_message_bytes");
    assert!(found[0].reason.contains("decimal") && found[0].reason.contains("\"16MiB\""), "{:?}", found[0]);
}

/// Two listeners on one port of one address would pass the config and fail at start with
/// "Address already in use": the clash is a problem of the later key, naming the earlier.
#[test]
fn two_listeners_on_one_address_are_a_problem_naming_both_keys() {
    let found = problems(&format!(
        "{MINIMAL}[mllp]\nlisten = \"127.0.0.1:11112\"\n[dicom]\nlisten = \"127.0.0.1:11112\"\n\
         [http]\nlisten = \"0.0.0.0:11112\"\n"
    ));
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["dicom.listen", "http.listen"]);
    assert!(found[0].reason.contains("clashes with mllp.listen = 127.0.0.1:11112"), "{}", found[0].reason);
    assert!(found[0].reason.contains("Address already in use"), "{}", found[0].reason);
    assert!(found[1].reason.contains("clashes with mllp.listen"), "{}", found[1].reason);
    let ok = |listens: [&str; 3]| {
        let text = format!(
            "{MINIMAL}[mllp]\nlisten = {:?}\n[dicom]\nlisten = {:?}\n[http]\nlisten = {:?}\n",
            listens[0], listens[1], listens[2]
        );
        Config::from_toml(&text).is_ok()
    };
    assert!(ok(["127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"]), "port 0 is a fresh port each time");
    assert!(ok(["127.0.0.1:2575", "127.0.0.2:2575", "[::1]:2575"]), "other addresses");
    assert!(ok(["0.0.0.0:2575", "[::1]:2575", "127.0.0.1:8080"]), "the IPv4 wildcard leaves IPv6 alone");
    assert!(!ok(["[::]:2575", "127.0.0.1:2575", "127.0.0.1:8080"]), "the IPv6 wildcard is dual-stack");
}
