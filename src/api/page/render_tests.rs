use super::*;

#[test]
fn durations_read_in_the_largest_sensible_unit() {
    assert_eq!(duration(-3), "0 s");
    assert_eq!(duration(119), "119 s");
    assert_eq!(duration(125), "2 min");
    assert_eq!(duration(7200 + 300), "2 h 5 min");
    assert_eq!(duration(2 * 86_400 + 3 * 3600), "2 d 3 h");
}

#[test]
fn a_figure_carries_its_path_and_json_value() {
    let status = serde_json::json!({ "stored": { "hl7_messages": 3 }, "sync": { "last_success_at": null } });
    let html = figure(&status, "stored.hl7_messages").into_string();
    assert_eq!(html, r#"<span data-status="stored.hl7_messages" data-value="3">3</span>"#);
    let html = figure(&status, "sync.last_success_at").into_string();
    assert_eq!(html, r#"<span data-status="sync.last_success_at" data-value="null">–</span>"#);
}

#[test]
fn the_backups_show_their_schedule_and_a_failure_is_a_problem() {
    let off = serde_json::json!({ "enabled": false });
    assert!(backups(&off).into_string().contains("not set"));
    assert_eq!(backup_problem(&off), None);
    let failing = serde_json::json!({
        "enabled": true, "dir": "/var/backups/zenedge", "schedule": "daily 02:00", "keep": "30d",
        "next_at": "2026-12-09T01:00:00Z", "failing": true,
        "last_success": { "at": "2026-12-07T01:00:03Z", "name": "zenedge-20261207T010000Z" },
        "last_failure": { "at": "2026-12-08T01:00:02Z", "reason": "Read-only file system" },
    });
    let html = backups(&failing).into_string();
    for part in
        ["daily 02:00", "/var/backups/zenedge", "zenedge-20261207T010000Z", "Read-only file system", "class=\"bad\""]
    {
        assert!(html.contains(part), "{part} not in {html}");
    }
    assert_eq!(backup_problem(&failing).as_deref(), Some("the last scheduled backup failed: Read-only file system"));
}
