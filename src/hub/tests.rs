use super::*;

#[test]
fn an_identity_may_touch_only_the_edges_it_names() {
    let identity = EdgeIdentity::new(vec!["edge-1".into(), "edge-1.example".into()]);
    assert!(identity.may_access("edge-1"));
    assert!(identity.may_access("edge-1.example"));
    assert!(!identity.may_access("edge-2"));
    assert_eq!(identity.name(), "edge-1");
    let nobody = EdgeIdentity::from_der(b"not a certificate");
    assert!(!nobody.may_access(""));
    assert!(nobody.name().contains("none"));
}
