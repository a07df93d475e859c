use super::*;

/// A self-signed certificate with `cn` (if any) and `names` (DNS names or IP addresses) as
/// subject alternative names.
fn certificate(cn: Option<&str>, names: &[&str]) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn the_identity_holds_the_common_name_the_alternative_names_and_the_fingerprint() {
    use sha2::Digest;
    let der = certificate(Some("CT01 scanner"), &["ct01.radiology.example", "10.0.20.7"]);
    let id = PeerIdentity::from_der(&der);
    assert_eq!(id.subject_cn.as_deref(), Some("CT01 scanner"));
    assert_eq!(id.sans, ["DNS:ct01.radiology.example", "IP:10.0.20.7"]);
    assert_eq!(id.sha256_fingerprint, crate::ids::hex(&sha2::Sha256::digest(&der)));
    assert_eq!(id.name(), "CT01 scanner");
    assert!(id.to_string().starts_with("CN=CT01 scanner sha256="), "{id}");
}

#[test]
fn a_certificate_is_matched_by_its_common_name_an_alternative_name_or_its_fingerprint() {
    let der = certificate(Some("ris"), &["ris.hospital.example", "10.0.10.4"]);
    let id = PeerIdentity::from_der(&der);
    let name = |n: &str| CertificateMatch::Name(n.into());
    assert!(id.matches(&name("ris")));
    assert!(id.matches(&name("ris.hospital.example")));
    assert!(id.matches(&name("10.0.10.4")));
    assert!(!id.matches(&name("lab")), "another name");
    assert!(!id.matches(&name("DNS:ris.hospital.example")), "names are written without their kind");
    let digest = crate::ids::sha256_from_hex(&id.sha256_fingerprint).unwrap();
    assert!(id.matches(&CertificateMatch::Sha256(digest)));
    let other = PeerIdentity::from_der(&certificate(Some("ris"), &[]));
    assert!(!other.matches(&CertificateMatch::Sha256(digest)), "same name, another certificate");
}

#[test]
fn a_certificate_without_names_is_known_by_its_fingerprint() {
    let id = PeerIdentity::from_der(&certificate(None, &[]));
    assert_eq!((id.subject_cn.as_deref(), id.sans.len()), (None, 0));
    assert_eq!(id.name(), id.sha256_fingerprint);
    let garbage = PeerIdentity::from_der(b"not a certificate");
    assert_eq!(garbage.sha256_fingerprint.len(), 64);
}

#[test]
fn an_identity_without_names_is_written_without_them() {
    let id = PeerIdentity { subject_cn: None, sans: Vec::new(), sha256_fingerprint: "ab".repeat(32) };
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("{{\"sha256_fingerprint\":\"{}\"}}", "ab".repeat(32)));
    assert_eq!(serde_json::from_str::<PeerIdentity>(&json).unwrap(), id);
}
