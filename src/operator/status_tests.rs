use super::*;

#[test]
fn a_daemon_that_is_not_there_is_a_clear_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let message = fetch(addr).unwrap_err();
    assert!(message.contains("does not answer") && message.contains("http.listen"), "{message}");
}

#[test]
fn the_summary_names_lag_breaker_and_dead_letters() {
    let status = serde_json::json!({
        "edge_id": "edge-1",
        "last_seq": 120,
        "ingest": {"hl7_messages": {"AA": 100, "AE": 2}, "dicom_instances_stored": 18, "studies_completed": 3},
        "disk": {"free": 10_737_418_240u64, "reserve": 2_147_483_648u64, "below_reserve": false},
        "sync": {
            "enabled": true, "hub_url": "https://hub.example:8443", "cursor": 100, "lag_events": 20,
            "lag_seconds": 4.25, "breaker": "open", "consecutive_failures": 5,
            "last_error": "connect: connection refused", "last_success_at": null,
            "batches_sent": 3, "events_sent": 100, "dead_letters": 1
        }
    });
    let text = summary(&status, jiff::Timestamp::now());
    for needle in [
        "edge-1",
        "since start HL7 messages answered: AA 100, AE 2",
        "10.0 GiB free",
        "behind by 20 events (4.2 s)",
        "breaker open",
        "connection refused",
        "dead letters 1",
        "sent 3 batches, 100 events since start",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let forwarding = serde_json::json!({"edge_id": "e", "sync": {"enabled": false}, "forward": [{
        "name": "central", "required": true, "cursor": 7, "lag_events": 3, "lag_instances": 2,
        "lag_bytes": 1048576, "lag_seconds": 42.25, "in_flight": 2, "breaker": "open",
        "stored_total": 5, "refused_total": 1, "last_confirmed_at": null, "last_error": "association: refused",
        "dead_letters": {"parked": 1, "retry": 0, "skipped": 2, "delivered": 0}
    }]});
    let text = summary(&forwarding, jiff::Timestamp::now());
    for needle in [
        "forward     central (required): cursor 7, behind by 3 events (2 instances, 1048576 bytes, 42.2 s)",
        "breaker open",
        "1 refused",
        "association: refused",
        "dead letters 1 (1 parked, 0 to retry, 2 skipped)",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    let off = serde_json::json!({"edge_id": "e", "sync": {"enabled": false}});
    assert!(summary(&off, jiff::Timestamp::now()).contains("sync        off"));
}

fn with_error(cleared_at: Option<&str>) -> Value {
    serde_json::json!({
        "edge_id": "edge-1",
        "sync": {
            "enabled": true, "hub_url": "https://hub.example:8443", "cursor": 100, "lag_events": 0,
            "breaker": "closed", "consecutive_failures": 0,
            "last_error": "connect: connection refused", "last_error_at": "2026-11-23T15:19:31Z",
            "last_error_cleared_at": cleared_at,
        }
    })
}

#[test]
fn the_last_error_says_when_it_happened_and_whether_it_cleared() {
    let now: jiff::Timestamp = "2026-11-23T15:31:31Z".parse().unwrap();
    let cleared = summary(&with_error(Some("2026-11-23T15:20:02Z")), now);
    assert!(
        cleared.contains(
            "last error at 2026-11-23T15:19:31Z (12 min ago; cleared at 2026-11-23T15:20:02Z): connect: connection refused"
        ),
        "{cleared}"
    );
    let failing = summary(&with_error(None), "2026-11-23T15:19:35Z".parse().unwrap());
    assert!(failing.contains("(4 s ago; still failing)"), "{failing}");
    assert_eq!(ago("2026-11-20T15:19:31Z", now).as_deref(), Some("3 d"));
    assert_eq!(ago("2026-11-23T12:19:31Z", now).as_deref(), Some("3 h"));
}

#[test]
fn a_stopped_sync_names_the_first_differing_seq_and_the_way_out() {
    let mut status = with_error(None);
    status["sync"]["diverged"] = serde_json::json!({
        "epoch": 0, "first_differing_seq": 6, "fork_at": 5, "hub_stored_through": 15,
        "detected_at": "2026-11-23T15:19:31Z"
    });
    status["sync"]["restored_at"] = "2026-11-23T15:00:00Z".into();
    let text = summary(&status, jiff::Timestamp::now());
    for needle in [
        "STOPPED (hub_diverged)",
        "from seq 6",
        "hub at 15",
        "zenedge sync fork",
        "after seq 5",
        "restored from a backup",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}

/// The README's example reads like lifetime totals: they are, on their own line, and
/// what the counters saw since the daemon started is said to be that.
#[test]
fn the_summary_shows_what_the_log_holds_apart_from_what_came_since_start() {
    let status = serde_json::json!({
        "edge_id": "edge-1",
        "last_seq": 5000,
        "stored": {"hl7_messages": 1190022, "dicom_instances": 1, "studies": 402, "studies_completed": 399},
        "ingest": {"hl7_messages": {"AA": 3}, "dicom_instances_stored": 0, "studies_completed": 0},
        "disk": {},
        "sync": {"enabled": true, "batches_sent": 1, "events_sent": 1}
    });
    let text = summary(&status, jiff::Timestamp::now());
    for needle in [
        "stored      1190022 HL7 messages, 1 DICOM instance, 402 studies (399 completed)",
        "since start HL7 messages answered: AA 3; DICOM instances stored: 0",
        "sent 1 batch, 1 event since start",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}
