use super::*;

#[test]
fn edge_ids_are_safe_identifiers() {
    for good in ["edge-1", "A.b_c-9", &"x".repeat(64)] {
        assert!(is_valid_edge_id(good), "{good}");
    }
    for bad in ["", "edge 1", "edge/1", "é", &"x".repeat(65), "a%2Fb"] {
        assert!(!is_valid_edge_id(bad), "{bad}");
    }
}

#[test]
fn no_edge_id_can_look_like_an_epochs_key() {
    assert_eq!(super::super::epochs::stream_key("edge-1", 2), "edge-1#2");
    assert!(!is_valid_edge_id("edge-1#2"), "no edge id can look like an epoch's key");
}

#[test]
fn the_compressed_body_limit_leaves_room_for_gzip_overhead() {
    assert_eq!(compressed_limit(64 << 20), (64 << 20) + (4 << 20) + (64 << 10));
    assert_eq!(compressed_limit(usize::MAX), usize::MAX);
}

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
