use super::*;
use crate::parse_run_id;

#[test]
fn default_run_ids_are_short_base36_timestamps() {
    let id = default_run_id();
    assert!(id.len() <= 9 && id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    assert!(parse_run_id("a|b").is_err());
}
