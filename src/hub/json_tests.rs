use serde::Serialize;
use serde_json::json;

use super::*;

#[test]
fn an_envelope_shows_its_uuid_as_text_and_its_payload_bytes_as_base64() {
    #[derive(Serialize)]
    struct Data {
        #[serde(with = "serde_bytes")]
        raw: Vec<u8>,
        count: i32,
        ratio: f64,
        note: Option<String>,
    }
    #[derive(Serialize)]
    struct Envelope {
        seq: u64,
        event_id: uuid::Uuid,
        event_type: &'static str,
        edge_id: &'static str,
        data: Data,
    }
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let envelope = Envelope {
        seq: 7,
        event_id: id,
        event_type: "SomethingNew",
        edge_id: "edge-1",
        data: Data { raw: b"MSH|".to_vec(), count: -3, ratio: 0.5, note: None },
    };
    let bytes = rmp_serde::to_vec_named(&envelope).unwrap();
    assert_eq!(
        envelope_json(&bytes),
        json!({
            "seq": 7,
            "event_id": "01234567-89ab-cdef-0123-456789abcdef",
            "event_type": "SomethingNew",
            "edge_id": "edge-1",
            "data": { "raw": "TVNIfA==", "count": -3, "ratio": 0.5, "note": null },
        })
    );
}

#[test]
fn values_without_a_json_form_still_show() {
    use rmpv::Value as M;
    let value = M::Map(vec![
        (M::from(1), M::from("one")),
        (M::Boolean(true), M::F64(f64::NAN)),
        (M::from("x"), M::Ext(5, vec![1, 2])),
        (M::from("other_id"), M::Binary(vec![1, 2, 3])),
        (M::from("big"), M::from(u64::MAX)),
        (M::from("small"), M::from(i64::MIN)),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &value).unwrap();
    assert_eq!(
        envelope_json(&bytes),
        json!({
            "1": "one",
            "true": null,
            "x": { "ext_type": 5, "base64": "AQI=" },
            "other_id": "AQID",
            "big": u64::MAX,
            "small": i64::MIN,
        })
    );
    // {"bad": <the bytes 0x66 0xff as a string>}: not UTF-8.
    let invalid = [0x81, 0xa3, b'b', b'a', b'd', 0xa2, 0x66, 0xff];
    assert_eq!(envelope_json(&invalid), json!({ "bad": "f\u{fffd}" }));
}

#[test]
fn undecodable_bytes_are_reported_not_dropped() {
    // An array of two holding one element, and nothing at all.
    assert!(envelope_json(&[0x92, 0x01]).get("undecodable").is_some());
    assert!(envelope_json(&[]).get("undecodable").is_some());
}

#[test]
fn base64_matches_rfc_4648_test_vectors() {
    let vectors =
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")];
    for (plain, encoded) in vectors {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64(&[0xff, 0xfe]), "//4=");
}

#[test]
fn an_envelope_written_straight_to_the_output_is_the_json_of_its_value() {
    use rmpv::Value as M;
    let id = uuid::Uuid::from_u128(7);
    let value = M::Map(vec![
        (M::from("seq"), M::from(9)),
        (M::from("event_id"), M::Binary(id.as_bytes().to_vec())),
        (M::from("data"), M::Map(vec![(M::from("list"), M::Array(vec![M::Nil, M::F32(1.5), M::from(-2)]))])),
        (M::from(3), M::Ext(1, vec![9])),
    ]);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &value).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&serde_json::to_vec(&EnvelopeJson(&bytes)).unwrap()).unwrap();
    assert_eq!(written, envelope_json(&bytes));
    assert_eq!(written["event_id"], id.hyphenated().to_string());
    assert_eq!(written["data"]["list"], json!([null, 1.5, -2]));
    assert_eq!(written["3"], json!({ "ext_type": 1, "base64": "CQ==" }));
}
