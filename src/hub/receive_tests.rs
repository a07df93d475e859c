use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, value.parse().unwrap());
    }
    map
}

#[test]
fn batch_headers_are_read_strictly() {
    let ok = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "8"), (wire::SKIPPED, "6,8")])).unwrap();
    assert_eq!(ok, BatchHeaders { first: 5, last: 8, skipped: vec![6, 8], redelivery: false, prev_event_id: None });
    let linked = batch_headers(&headers(&[
        (wire::FIRST_SEQ, "5"),
        (wire::LAST_SEQ, "8"),
        (wire::PREV_EVENT_ID, "01234567-89ab-cdef-0123-456789abcdef"),
    ]))
    .unwrap();
    assert_eq!(linked.prev_event_id, Some(uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)));
    let bad_id = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "8"), (wire::PREV_EVENT_ID, "x")]));
    assert!(bad_id.unwrap_err().refusal.error.contains(wire::PREV_EVENT_ID));
    let missing = batch_headers(&headers(&[(wire::FIRST_SEQ, "5")])).unwrap_err();
    assert!(missing.refusal.error.contains(wire::LAST_SEQ), "{missing:?}");
    let garbled = batch_headers(&headers(&[(wire::FIRST_SEQ, "five"), (wire::LAST_SEQ, "8")])).unwrap_err();
    assert_eq!(garbled.status, StatusCode::BAD_REQUEST);
    let two = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "6"), (wire::REDELIVERY, "1")]));
    assert!(two.is_err());
    let odd = batch_headers(&headers(&[(wire::FIRST_SEQ, "5"), (wire::LAST_SEQ, "5"), (wire::REDELIVERY, "yes")]));
    assert!(odd.is_err());
}

#[test]
fn only_gzip_msgpack_bodies_are_accepted() {
    let good = headers(&[("content-type", "application/msgpack"), ("content-encoding", "gzip")]);
    check_media_type(&good).unwrap();
    let json = headers(&[("content-type", "application/json"), ("content-encoding", "gzip")]);
    assert_eq!(check_media_type(&json).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let plain = headers(&[("content-type", "application/msgpack")]);
    assert_eq!(check_media_type(&plain).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
