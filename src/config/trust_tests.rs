use super::super::{CertificateMatch, Config, ConfigError, Problem};

const MINIMAL: &str = "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n";

fn problems(text: &str) -> Vec<Problem> {
    match Config::from_toml(&format!("{MINIMAL}{text}")) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

fn config(text: &str) -> Config {
    Config::from_toml(&format!("{MINIMAL}{text}")).unwrap_or_else(|e| panic!("{e}"))
}

fn keys(found: &[Problem]) -> Vec<&str> {
    found.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn a_tls_listener_needs_the_tls_identity_and_a_client_ca_each_named() {
    let found = problems("[mllp]\ntls_listen = \"127.0.0.1:2576\"\n[dicom]\ntls_listen = \"127.0.0.1:2762\"\n");
    assert_eq!(keys(&found), ["tls.cert", "tls.key", "tls.client_ca"]);
    assert!(found[0].reason.contains("mllp.tls_listen, dicom.tls_listen serve TLS"), "{:?}", found[0]);
    assert!(found[2].reason.contains("require client certificates"), "{:?}", found[2]);
    let https = config("[http]\ntls = true\n[tls]\ncert = \"edge.pem\"\nkey = \"edge.key\"\n");
    assert!(https.http.tls, "HTTPS alone needs no client CA");
    assert_eq!(https.tls.files.unwrap().client_ca, None);
    let found = problems("[tls]\ncert = \"edge.pem\"\ncrl = \"revoked.pem\"\nhandshake_timeout = \"0s\"\n");
    assert_eq!(keys(&found), ["tls.handshake_timeout", "tls.key", "tls.crl"]);
}

#[test]
fn tls_listeners_default_to_off_and_plain_ones_can_be_switched_off() {
    let defaults = config("");
    assert_eq!((defaults.mllp.tls_listen, defaults.dicom.tls_listen, defaults.http.tls), (None, None, false));
    assert_eq!(defaults.tls.files, None);
    assert_eq!(defaults.tls.handshake_timeout, std::time::Duration::from_secs(10));
    let tls = config(
        "[mllp]\nlisten = \"\"\ntls_listen = \"0.0.0.0:2576\"\n[dicom]\nlisten = \"\"\ntls_listen = \"0.0.0.0:2762\"\n\
         [tls]\ncert = \"edge.pem\"\nkey = \"edge.key\"\nclient_ca = \"ca.pem\"\ncrl = \"ca.crl\"\nhandshake_timeout = \"3s\"\n",
    );
    assert_eq!((tls.mllp.listen, tls.dicom.listen), (None, None));
    assert_eq!(tls.mllp.tls_listen, Some("0.0.0.0:2576".parse().unwrap()));
    let files = tls.tls.files.unwrap();
    assert_eq!(files.crl, Some("ca.crl".into()));
    assert_eq!(tls.tls.handshake_timeout, std::time::Duration::from_secs(3));
}

#[test]
fn a_tls_listener_on_the_port_of_another_listener_is_a_clash() {
    let found =
        problems("[mllp]\ntls_listen = \"127.0.0.1:11112\"\n[tls]\ncert = \"a\"\nkey = \"b\"\nclient_ca = \"c\"\n");
    assert_eq!(keys(&found), ["dicom.listen"]);
    assert!(found[0].reason.contains("clashes with mllp.tls_listen"), "{:?}", found[0]);
}

#[test]
fn senders_bind_a_certificate_or_network_to_msh3_and_msh4_values() {
    let c = config(
        "[[mllp.senders]]\nname = \"ris\"\ncertificate = \"ris.hospital.example\"\nsending_application = [\"RIS\"]\n\
         sending_facility = [\"HOSP\"]\n\
         [[mllp.senders]]\nfrom = [\"10.0.10.0/24\", \"10.0.11.7\"]\ncertificate = \"SHA256:AB:cd\
         :00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01\"\n",
    );
    let s = &c.mllp.senders;
    assert_eq!(s[0].name, "ris");
    assert_eq!(s[0].certificate, Some(CertificateMatch::Name("ris.hospital.example".into())));
    assert!(s[0].allows("RIS", "HOSP") && !s[0].allows("RIS", "OTHER") && !s[0].allows("LAB", "HOSP"));
    assert_eq!(s[1].name, "senders[1]");
    let mut digest = [0u8; 32];
    (digest[0], digest[1], digest[31]) = (0xab, 0xcd, 0x01);
    assert_eq!(s[1].certificate, Some(CertificateMatch::Sha256(digest)));
    assert!(s[1].allows("ANY", "THING"), "no lists: any MSH-3/MSH-4");
    assert!(s[1].from_matches("10.0.10.9".parse().unwrap()) && s[1].from_matches("10.0.11.7".parse().unwrap()));
    assert!(!s[1].from_matches("10.0.12.1".parse().unwrap()));
}

#[test]
fn every_bad_sender_entry_is_a_problem_of_its_own_key() {
    let found = problems(
        "[mllp]\nallow_from = [\"10.0.0.0/8\", \"intranet\"]\n\
         [[mllp.senders]]\nsending_application = [\"RIS\"]\n\
         [[mllp.senders]]\ncertificate = \"sha256:1234\"\nfrom = [\"10.0.0.300\"]\n",
    );
    assert_eq!(
        keys(&found),
        ["mllp.allow_from[1]", "mllp.senders[0]", "mllp.senders[1].certificate", "mllp.senders[1].from[0]"]
    );
    assert!(found[1].reason.contains("names no connection"), "{:?}", found[1]);
    assert!(found[2].reason.contains("64 hex digits"), "{:?}", found[2]);
    let unknown = problems("[[mllp.senders]]\ncert = \"ris\"\n");
    assert_eq!(keys(&unknown), ["mllp.senders"]);
    assert!(unknown[0].reason.contains("cert"), "{:?}", unknown[0]);
}

#[test]
fn calling_ae_entries_may_be_tables_naming_a_certificate() {
    let c = config(
        "[dicom]\ncalling_ae_allow = [\"CT01\", { ae = \"CT02\", certificate = \"ct02.example\" }, \
         { ae = \"MR01\", from = \"10.0.20.0/24\" }]\n",
    );
    let allow = &c.dicom.calling_ae_allow;
    assert_eq!(allow[0].certificate, None);
    assert_eq!(allow[1].certificate, Some(CertificateMatch::Name("ct02.example".into())));
    assert!(allow[2].matches("MR01", "10.0.20.5".parse().unwrap()));
    let found = problems(
        "[dicom]\ncalling_ae_allow = [{ ae = \"CT02\", cert = \"x\" }, { from = \"10.0.0.0/8\" }, 7, \
         { ae = \"CT03\", certificate = \"\" }]\n",
    );
    assert_eq!(
        keys(&found),
        [
            "dicom.calling_ae_allow[0]",
            "dicom.calling_ae_allow[1]",
            "dicom.calling_ae_allow[2]",
            "dicom.calling_ae_allow[3]"
        ]
    );
    assert!(found[0].reason.contains("unknown key \"cert\""), "{:?}", found[0]);
    assert!(found[1].reason.contains("needs ae"), "{:?}", found[1]);
}

#[test]
fn plain_listeners_off_loopback_are_warned_about_and_loopback_ones_are_not() {
    assert_eq!(config("").warnings(), Vec::<String>::new(), "the defaults listen on loopback");
    let open = config(
        "[mllp]\nlisten = \"0.0.0.0:2575\"\n[dicom]\nlisten = \"[::]:11112\"\n[http]\nlisten = \"10.0.0.5:8080\"\n",
    );
    let warnings = open.warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings[0].starts_with("mllp.listen: 0.0.0.0:2575 takes HL7 messages unencrypted"), "{warnings:?}");
    assert!(warnings[0].contains("mllp.allow_from"), "{warnings:?}");
    assert!(warnings[1].starts_with("dicom.listen: [::]:11112"), "{warnings:?}");
    assert!(warnings[2].contains("http.tls = true"), "{warnings:?}");
    let https = config("[http]\nlisten = \"10.0.0.5:8080\"\ntls = true\n[tls]\ncert = \"a\"\nkey = \"b\"\n");
    assert_eq!(https.warnings(), Vec::<String>::new());
}

#[test]
fn a_certificate_binding_no_tls_listener_can_present_is_warned_about() {
    let c = config(
        "[[mllp.senders]]\ncertificate = \"ris\"\n[dicom]\ncalling_ae_allow = [{ ae = \"CT02\", certificate = \"ct02\" }]\n",
    );
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].starts_with("mllp.senders[0]: names a certificate, but mllp.tls_listen is off"));
    assert!(warnings[1].starts_with("dicom.calling_ae_allow[0]: names a certificate, but dicom.tls_listen is off"));
}
