use super::*;

#[test]
fn study_templates_skip_exams_without_a_study() {
    assert!(!has_study(9));
    assert_eq!(fill("/s/{study}", 9), format!("/s/{}", study_uid(8)));
    assert_eq!(fill("/s/{study}", 10), format!("/s/{}", study_uid(10)));
    assert_eq!(fill("/o?a={accession}&after={exam}", 9), format!("/o?a={}&after=9", accession(9)));
}
