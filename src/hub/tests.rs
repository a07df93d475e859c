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

#[test]
fn zero_limits_are_refused() {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from([
        "zenedge",
        "hub",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        "x",
        "--max-event-bytes",
        "0",
    ])
    .unwrap();
    let crate::cli::Command::Hub(args) = cli.command else { panic!("not the hub command") };
    assert!(options(&args).unwrap_err().contains("--max-event-bytes"));
}
