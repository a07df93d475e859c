use super::*;

fn header(sender: &str, msh15: &str, msh16: &str) -> Header {
    let raw = format!("MSH|^~\\&|{sender}|FAC|ZE|EDGE|20261123||ORM^O01|1|P|2.5|||{msh15}|{msh16}\r");
    crate::hl7::read(raw.as_bytes(), &crate::hl7::ReadOptions::default()).unwrap().header
}

#[test]
fn a_sender_asking_for_application_acks_is_named_once() {
    let notices = AppAckNotices::default();
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    assert!(notices.note(&header("RIS", "AL", "AL"), peer));
    assert!(!notices.note(&header("RIS", "AL", "AL"), peer), "once per sender");
    assert!(!notices.note(&header("RIS", "AL", "SU"), peer));
    assert!(notices.note(&header("LIS", "NE", "SU"), peer), "another sender");
    for (msh15, msh16) in [("AL", "NE"), ("AL", "ER"), ("AL", ""), ("", "AL")] {
        assert!(!notices.note(&header(&format!("X{msh15}{msh16}"), msh15, msh16), peer), "{msh15} {msh16}");
    }
}

#[test]
fn the_senders_remembered_are_bounded() {
    let notices = AppAckNotices::default();
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let named = (0..MAX_SENDERS + 10).filter(|i| notices.note(&header(&format!("S{i}"), "AL", "AL"), peer)).count();
    assert_eq!(named, MAX_SENDERS);
}
