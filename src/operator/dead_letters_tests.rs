use super::*;

#[test]
fn the_table_shows_every_letter_on_one_line() {
    let letters = vec![serde_json::json!({
        "seq": 1234, "status": "parked", "attempts": 2, "event_type": "HL7MessageReceived",
        "parked_at": "2026-11-23T15:19:31Z", "updated_at": "2026-11-23T15:20:00Z",
        "reason": "422: event 1234 is too large"
    })];
    let text = table(&letters);
    let line = text.lines().nth(1).unwrap();
    for needle in ["1234", "parked", "2", "HL7MessageReceived", "2026-11-23T15:19:31Z", "422: event 1234 is too large"]
    {
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
    }
    assert_eq!(table(&[]), "no dead letters\n");
}
