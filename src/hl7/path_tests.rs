use super::*;

fn path(s: &str) -> FieldPath {
    s.parse().unwrap()
}

#[test]
fn component_and_subcomponent_default_to_one() {
    let p = path("OBR-18");
    assert_eq!((p.segment(), p.field(), p.component(), p.subcomponent()), ("OBR", 18, 1, 1));
    let p = path("PID-3.4.2");
    assert_eq!((p.segment(), p.field(), p.component(), p.subcomponent()), ("PID", 3, 4, 2));
}

#[test]
fn display_writes_the_shortest_equivalent_form() {
    for (given, shown) in [
        ("OBR-18", "OBR-18"),
        ("OBR-3.1", "OBR-3"),
        ("obr-3.2", "OBR-3.2"),
        ("PID-3.1.2", "PID-3.1.2"),
        ("ZDS-1.1.1", "ZDS-1"),
    ] {
        assert_eq!(path(given).to_string(), shown);
        assert_eq!(path(shown), path(given));
    }
}

#[test]
fn bad_paths_explain_the_expected_form() {
    for bad in
        ["OBR18", "OB-18", "OBRX-1", "1BR-1", "OBR-", "OBR-0", "OBR-x", "OBR-1.2.3.4", "OBR-1000", "OBR-1..2", ""]
    {
        let err = bad.parse::<FieldPath>().unwrap_err().to_string();
        assert!(err.contains("expected SEGMENT-FIELD"), "{bad}: {err}");
    }
    let err = "OBR18".parse::<FieldPath>().unwrap_err();
    assert_eq!(err.reason, "missing '-'");
}

#[test]
fn serde_uses_the_string_form() {
    let p: FieldPath = serde_json::from_str("\"IPC-1\"").unwrap();
    assert_eq!(p, path("IPC-1"));
    assert_eq!(serde_json::to_string(&path("OBR-3.1")).unwrap(), "\"OBR-3\"");
    assert!(serde_json::from_str::<FieldPath>("\"IPC\"").is_err());
}
