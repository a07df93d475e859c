use super::*;
use crate::config::CertificateMatch;

fn sender(name: &str, certificate: Option<&str>, from: &[&str], apps: &[&str], facilities: &[&str]) -> MllpSender {
    MllpSender {
        name: name.into(),
        certificate: certificate.map(|c| CertificateMatch::Name(c.into())),
        from: from.iter().map(|n| n.parse().unwrap()).collect(),
        sending_applications: apps.iter().map(|a| a.to_string()).collect(),
        sending_facilities: facilities.iter().map(|f| f.to_string()).collect(),
    }
}

fn identity(cn: &str) -> PeerIdentity {
    PeerIdentity { subject_cn: Some(cn.into()), sans: Vec::new(), sha256_fingerprint: "00".repeat(32) }
}

const RIS_NET: &str = "10.0.10.4";

fn bindings() -> Vec<MllpSender> {
    vec![sender("ris", Some("ris"), &[], &["RIS"], &["HOSP"]), sender("lab", None, &["10.0.30.0/24"], &["LAB"], &[])]
}

fn check(identity: Option<&PeerIdentity>, addr: &str, sender: (&str, &str)) -> Option<ErrorDetail> {
    refusal(&bindings(), identity, addr.parse().unwrap(), sender)
}

#[test]
fn without_bindings_every_sender_is_allowed() {
    assert_eq!(refusal(&[], None, RIS_NET.parse().unwrap(), ("ANY", "ONE")), None);
}

#[test]
fn a_bound_certificate_may_send_as_its_msh3_and_msh4_only() {
    let ris = identity("ris");
    assert_eq!(check(Some(&ris), RIS_NET, ("RIS", "HOSP")), None);
    let wrong_app = check(Some(&ris), RIS_NET, ("LAB", "HOSP")).expect("refused");
    assert_eq!((wrong_app.code, wrong_app.location.as_deref()), (103, Some("MSH^1^3")));
    assert!(wrong_app.text.contains("the certificate \"ris\" from 10.0.10.4 (ris) may not send as MSH-3 \"LAB\""));
    let wrong_facility = check(Some(&ris), RIS_NET, ("RIS", "ELSEWHERE")).expect("refused");
    assert_eq!(wrong_facility.location.as_deref(), Some("MSH^1^4"));
}

#[test]
fn another_certificate_or_a_plain_connection_matches_no_certificate_binding() {
    let other = identity("modality-gateway");
    let refused = check(Some(&other), RIS_NET, ("RIS", "HOSP")).expect("refused");
    assert!(refused.text.contains("matches no entry of mllp.senders"), "{}", refused.text);
    assert!(check(None, RIS_NET, ("RIS", "HOSP")).unwrap().text.contains("a plain connection from 10.0.10.4"));
}

#[test]
fn a_network_binding_takes_its_addresses_with_any_certificate_or_none() {
    assert_eq!(check(None, "10.0.30.9", ("LAB", "ANYWHERE")), None);
    assert_eq!(check(Some(&identity("lab-gw")), "10.0.30.9", ("LAB", "X")), None);
    assert_eq!(check(None, "::ffff:10.0.30.9", ("LAB", "X")), None, "an IPv4 peer on a dual-stack socket");
    assert!(check(None, "10.0.31.9", ("LAB", "X")).is_some(), "outside the network");
    assert!(check(None, "10.0.30.9", ("RIS", "HOSP")).is_some(), "the network's MSH-3 only");
}
