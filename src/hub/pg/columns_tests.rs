use super::*;

#[test]
fn an_hl7_message_gives_its_patient_ids_and_its_order_s_accession() {
    let envelope = serde_json::json!({
        "seq": 1, "event_id": "x", "event_type": "HL7MessageReceived", "tenant_id": "t1",
        "hospital_id": "h1", "occurred_at": "2026-01-02T03:04:05Z", "recorded_at": "2026-01-02T03:04:06Z",
        "aggregate": {"type": "hl7_message", "id": "m-1"},
        "data": {"raw": "MSH|", "summary": {"patient": {"id": "P1", "identifiers": [{"id": "P1"}, {"id": "NHS9"}]},
                 "orders": [{"accession_number": null}, {"accession_number": "ACC7"}]}}
    });
    let bytes = rmp_serde::to_vec_named(&envelope).unwrap();
    let got = columns(&bytes);
    assert_eq!(got.tenant_id.as_deref(), Some("t1"));
    assert_eq!(got.aggregate_type.as_deref(), Some("hl7_message"));
    assert_eq!(got.patient_ids, Some(vec!["P1".to_owned(), "NHS9".to_owned()]));
    assert_eq!(got.accession.as_deref(), Some("ACC7"));
    assert_eq!(got.recorded_at, Some("2026-01-02T03:04:06Z".parse().unwrap()));
}

#[test]
fn an_unknown_shape_leaves_the_columns_empty_instead_of_failing() {
    let envelope = serde_json::json!({"seq": 1, "event_type": "New", "data": {"patient_id": {"nested": 1}}});
    let got = columns(&rmp_serde::to_vec_named(&envelope).unwrap());
    assert_eq!((got.patient_ids, got.accession), (None, None));
    let study =
        serde_json::json!({"data": {"patient_id": "P2", "other_patient_ids": ["P3"], "accession_number": "A1"}});
    let got = columns(&rmp_serde::to_vec_named(&study).unwrap());
    assert_eq!(got.patient_ids, Some(vec!["P2".to_owned(), "P3".to_owned()]));
    assert_eq!(got.accession.as_deref(), Some("A1"));
}
