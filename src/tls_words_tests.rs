use std::time::Duration;

use super::*;

fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

#[test]
fn an_expired_certificate_is_described_with_dates_not_unix_seconds() {
    let e = Error::InvalidCertificate(CertificateError::ExpiredContext {
        time: at(1_796_606_887),
        not_after: at(1_609_459_200),
    });
    let text = describe(&e);
    assert_eq!(
        text,
        "invalid peer certificate: the certificate expired on 2021-01-01T00:00:00Z (it is now 2026-12-07T01:28:07Z)"
    );
    assert!(!e.to_string().contains("2021-01-01"), "rustls itself says {e}");
    let early = Error::InvalidCertificate(CertificateError::NotValidYetContext {
        time: at(1_609_459_200),
        not_before: at(1_796_606_887),
    });
    assert!(describe(&early).contains("not valid before 2026-12-07T01:28:07Z"), "{}", describe(&early));
}

#[test]
fn a_key_of_another_certificate_is_said_in_words_and_io_errors_are_unwrapped() {
    let e = Error::InconsistentKeys(InconsistentKeys::KeyMismatch);
    assert_eq!(describe(&e), "the private key does not belong to the certificate: their public keys differ");
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    assert!(describe_io(&io).contains("does not belong"));
    let plain = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert_eq!(describe_io(&plain), "reset");
}
