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
