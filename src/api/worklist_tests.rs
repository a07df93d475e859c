use axum::http::StatusCode;

use super::super::test_api::{READ, api, call};

const ORM: &str = "MSH|^~\\&|RIS|GENHOSP|ZENEDGE|RAD|20261214100000||ORM^O01|ORM0001|P|2.3.1\r\
    PID|1||MRN4712^^^GENHOSP^MR||Example^Anna||19800101|F\r\
    ORC|NW|PLC100^RIS|FIL200^PACS||SC||^^^20261215081500\r\
    OBR|1|PLC100^RIS|FIL200^PACS|CTHEAD^CT Head^L||||||||||||||ACC5001|RP5001|SPS5001||||CT\r";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worklist_answers_its_items_as_json_and_the_read_is_audited() {
    let a = api(None).await;
    crate::domain::hl7::store(&a.log.handle(), crate::domain::test_support::hl7(ORM)).await.unwrap();
    let (status, body) = call(&a.state, "GET", "/api/v1/worklist?modality=CT&date=20261201-20261231", Some(READ)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["accession_number"], "ACC5001");
    assert_eq!(items[0]["patient_id"], "MRN4712");
    assert_eq!(items[0]["scheduled_procedure_step_id"], "SPS5001");
    assert_eq!(items[0]["start_date"], "20261215");
    assert_eq!(body["truncated"], false);
    let trail = crate::audit::page(&a.log.reader(), 0, 10).unwrap();
    let objects = &trail.last().unwrap().record.objects;
    assert!(objects.iter().any(|o| o.id == "MRN4712"), "{objects:?}");

    for (query, count) in [("modality=MR", 0), ("date=-20261214", 0), ("date=20261215-", 1), ("station_ae=CT01", 0)] {
        let (status, body) = call(&a.state, "GET", &format!("/api/v1/worklist?{query}"), Some(READ)).await;
        assert_eq!((status, body["items"].as_array().unwrap().len()), (StatusCode::OK, count), "{query}: {body}");
    }
}

#[tokio::test]
async fn a_malformed_date_or_flag_is_a_400_naming_it() {
    let a = api(None).await;
    for (query, word) in [("date=2026-12", "date"), ("date=-", "date"), ("include_completed=yes", "include_completed")]
    {
        let (status, body) = call(&a.state, "GET", &format!("/api/v1/worklist?{query}"), Some(READ)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body["error"].as_str().unwrap().contains(word), "{query}: {body}");
    }
}
