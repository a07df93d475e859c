//! The DIMSE command-set decoder (`zenedge::dicom::dimse::parse`) on arbitrary bytes, and the
//! responses the association builds from what it decodes.
//!
//! Input: one reassembled command set (the association bounds it to
//! `dimse::MAX_COMMAND_BYTES`). Checked: no panic, in parsing or in building the C-ECHO,
//! C-STORE or C-FIND response (every status, with and without an Error Comment) from the
//! decoded request's fields, and each response reads back as a response of its kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenedge::dicom::dimse::{self, MAX_COMMAND_BYTES, Request, status};

/// C-STORE-RSP, C-FIND-RSP and C-ECHO-RSP command fields (PS3.7 E.1).
const C_STORE_RSP: u16 = 0x8001;
const C_FIND_RSP: u16 = 0x8020;
const C_ECHO_RSP: u16 = 0x8030;
const N_EVENT_REPORT_RSP: u16 = 0x8100;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_COMMAND_BYTES {
        return;
    }
    match dimse::parse(data) {
        Ok(Request::Echo { message_id, sop_class_uid }) => {
            let rsp = dimse::echo_response(message_id, &sop_class_uid);
            assert_response(&rsp, C_ECHO_RSP);
        }
        Ok(Request::Store { message_id, sop_class_uid, sop_instance_uid }) => {
            let statuses = [status::SUCCESS, status::OUT_OF_RESOURCES, status::DATA_SET_DOES_NOT_MATCH_SOP_CLASS];
            for (status, comment) in
                statuses.into_iter().zip([None, Some("disk reserve reached"), Some("ünïcode \\ text")])
            {
                let rsp = dimse::store_response(message_id, &sop_class_uid, &sop_instance_uid, status, comment);
                assert_response(&rsp, C_STORE_RSP);
            }
        }
        Ok(Request::Find { message_id, sop_class_uid }) => {
            let statuses =
                [status::PENDING, status::PENDING_WARNING, status::CANCEL, status::SUCCESS, status::OUT_OF_RESOURCES];
            for (status, comment) in statuses.into_iter().zip([None, None, None, None, Some("worklist unavailable")]) {
                let rsp = dimse::find_response(message_id, &sop_class_uid, status, comment);
                assert_response(&rsp, C_FIND_RSP);
            }
        }
        Ok(Request::EventReport { message_id, event_type_id, .. }) => {
            for status in [status::SUCCESS, 0x0110, 0x0113, 0x0115] {
                let rsp = zenedge::dicom::commitment::event_report_response(message_id, event_type_id, status);
                assert_response(&rsp, N_EVENT_REPORT_RSP);
            }
        }
        Ok(Request::Cancel { .. }) | Ok(Request::Other { .. }) | Err(_) => {}
    }
});

/// A response we wrote is a command set of the right kind (requests and responses share the
/// decoder: a response decodes as `Other` with its command field).
fn assert_response(rsp: &[u8], command_field: u16) {
    match dimse::parse(rsp) {
        Ok(Request::Other { command_field: got }) => assert_eq!(got, command_field),
        other => panic!("our response does not read back: {other:?}"),
    }
}
