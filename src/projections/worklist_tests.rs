use super::*;

#[test]
fn hl7_date_times_split_into_dicom_date_and_time() {
    let split = |s| split_datetime(s);
    assert_eq!(split("20261215081500"), (Some("20261215".into()), Some("081500".into())));
    assert_eq!(split("202612150815+0100"), (Some("20261215".into()), Some("0815".into())));
    assert_eq!(split("20261215"), (Some("20261215".into()), None));
    assert_eq!(split("20261215093000.25"), (Some("20261215".into()), Some("093000.25".into())));
    assert_eq!(split("2026"), (None, None));
    assert_eq!(split("tomorrow"), (None, None));
}

#[test]
fn order_status_maps_to_sps_status() {
    assert_eq!(status_of(Some("CM")), COMPLETED);
    assert_eq!(status_of(Some("ip")), STARTED);
    assert_eq!(status_of(Some("SC")), SCHEDULED);
    assert_eq!(status_of(None), SCHEDULED);
}

#[test]
fn derived_study_uids_are_valid_stable_and_distinct_per_event_and_group() {
    let event = uuid::Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);
    let uid = derived_study_uid(event, 0);
    assert_eq!(uid, derived_study_uid(event, 0));
    assert_ne!(uid, derived_study_uid(event, 1));
    assert_ne!(uid, derived_study_uid(uuid::Uuid::from_u128(2), 0));
    assert!(uid.starts_with("2.25.") && uid.len() <= 64, "{uid}");
    let digits = &uid[5..];
    assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'), "{uid}");
}
