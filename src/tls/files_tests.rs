use super::*;
use crate::tls::test_certs::{TestCa, write};

const DAY: i64 = 86_400;

#[test]
fn crls_are_read_with_their_next_update_and_garbage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let file = write(dir.path(), "ca.crl", &ca.crl(&[7, 8], 10 * DAY));
    let (list, next) = crls("tls.crl", &file).unwrap();
    assert_eq!(list.len(), 1);
    let days = next.unwrap().duration_since(Timestamp::now()).as_secs() / 86_400;
    assert_eq!(days, 9, "next update in ten days (less the seconds since)");
    let not_crl = write(dir.path(), "cert.pem", &ca.cert_pem);
    let e = crls("tls.crl", &not_crl).unwrap_err();
    assert!(e.to_string().starts_with("tls.crl (") && e.problem.contains("holds no CRL"), "{e}");
    let broken = write(dir.path(), "broken.crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n");
    assert!(crls("tls.crl", &broken).unwrap_err().problem.contains("does not parse"));
}

#[test]
fn the_expiry_warning_names_the_key_the_file_and_what_stops() {
    let now = Timestamp::now();
    let in_days = |d: i64| now.checked_add(jiff::SignedDuration::from_hours(24 * d)).unwrap();
    assert_eq!(expiry_warning("tls.cert", "edge.pem", in_days(31), now, "clients refuse"), None);
    let warning = expiry_warning("tls.cert", "edge.pem", in_days(12), now, "clients refuse").unwrap();
    assert!(warning.starts_with("tls.cert (edge.pem): the certificate expires on "), "{warning}");
    assert!(warning.ends_with("(in 12 days); renew it before then or clients refuse"), "{warning}");
}
