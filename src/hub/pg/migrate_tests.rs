use super::*;

#[test]
fn migrations_are_numbered_in_order_up_to_the_schema_version() {
    for (i, (version, _, _)) in MIGRATIONS.iter().enumerate() {
        assert_eq!(*version, i as i32 + 1);
    }
    assert_eq!(MIGRATIONS.last().unwrap().0, SCHEMA_VERSION);
    assert!(check_not_newer(SCHEMA_VERSION).is_ok());
    let error = check_not_newer(SCHEMA_VERSION + 1).unwrap_err().to_string();
    assert!(error.contains("newer"), "{error}");
}
