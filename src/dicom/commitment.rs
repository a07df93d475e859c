//! Storage Commitment Push Model (PS3.4 Annex J) on the wire: the N-ACTION-RQ by which the
//! forwarding asks an archive to commit the instances it sent, the archive's N-ACTION-RSP, and
//! the N-EVENT-REPORT by which the archive answers (usually on an association of its own to
//! our SCP), with our N-EVENT-REPORT-RSP.
//!
//! Command sets are implicit VR little endian (PS3.7 6.3.1), written with dicom-object as in
//! [`super::dimse`]. The report's data set comes from the wire: it is read only after the
//! bounds check of [`super::worklist::identifier`] (declared lengths, nesting), at most
//! [`MAX_REPORT_BYTES`].

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

use super::dimse::{CommandError, encode, read_response, response_number, uid, us};
use super::worklist::identifier;

/// The Storage Commitment Push Model SOP class.
pub const STORAGE_COMMITMENT: &str = "1.2.840.10008.1.20.1";
/// Its well-known SOP instance (PS3.4 J.3.5).
pub const STORAGE_COMMITMENT_INSTANCE: &str = "1.2.840.10008.1.20.1.1";
/// The largest report data set read (a report of 10,000 instances is about 1.5 MB).
pub const MAX_REPORT_BYTES: usize = 8 << 20;
/// Event Type ID: every instance committed.
pub const EVENT_ALL_COMMITTED: u16 = 1;
/// Event Type ID: some instances failed.
pub const EVENT_SOME_FAILED: u16 = 2;

const N_EVENT_REPORT_RSP: u16 = 0x8100;
const N_ACTION_RQ: u16 = 0x0130;
const N_ACTION_RSP: u16 = 0x8130;
const DATA_SET: u16 = 0x0000;
const NO_DATA_SET: u16 = 0x0101;

/// An instance named in a request or a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// N-ACTION-RQ (PS3.7 10.3.4): Action Type ID 1, "request storage commitment"; a data set
/// follows ([`action_data_set`]).
pub fn action_request(message_id: u16) -> Vec<u8> {
    encode(vec![
        uid(tags::REQUESTED_SOP_CLASS_UID, STORAGE_COMMITMENT),
        us(tags::COMMAND_FIELD, N_ACTION_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, DATA_SET),
        uid(tags::REQUESTED_SOP_INSTANCE_UID, STORAGE_COMMITMENT_INSTANCE),
        us(tags::ACTION_TYPE_ID, 1),
    ])
}

/// The request's data set (PS3.4 J.3.2.1.1), implicit VR little endian: the Transaction UID
/// and the Referenced SOP Sequence.
pub fn action_data_set(transaction_uid: &str, references: &[Reference]) -> Vec<u8> {
    let items: Vec<InMemDicomObject> = references
        .iter()
        .map(|r| {
            InMemDicomObject::from_element_iter([
                uid(tags::REFERENCED_SOP_CLASS_UID, &r.sop_class_uid),
                uid(tags::REFERENCED_SOP_INSTANCE_UID, &r.sop_instance_uid),
            ])
        })
        .collect();
    let obj = InMemDicomObject::from_element_iter([
        uid(tags::TRANSACTION_UID, transaction_uid),
        DataElement::new(
            tags::REFERENCED_SOP_SEQUENCE,
            VR::SQ,
            dicom_core::DicomValue::from(DataSetSequence::new(items, Length::UNDEFINED)),
        ),
    ]);
    let mut out = Vec::with_capacity(64 + 128 * references.len());
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a data set into a Vec cannot fail");
    out
}

/// What an archive answered to an N-ACTION-RQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionAnswer {
    pub message_id_being_responded_to: u16,
    pub status: u16,
}

/// Reads an N-ACTION-RSP command set (already bounded by the caller).
pub fn parse_action_response(bytes: &[u8]) -> Result<ActionAnswer, CommandError> {
    let obj = read_response(bytes)?;
    let number = |tag, name| response_number(&obj, tag, name);
    let field = number(tags::COMMAND_FIELD, "Command Field")?;
    if field != N_ACTION_RSP {
        return Err(CommandError::Decode(format!("command field 0x{field:04X} where an N-ACTION-RSP was due")));
    }
    Ok(ActionAnswer {
        message_id_being_responded_to: number(tags::MESSAGE_ID_BEING_RESPONDED_TO, "Message ID Being Responded To")?,
        status: number(tags::STATUS, "Status")?,
    })
}

/// N-EVENT-REPORT-RSP (PS3.7 10.3.1.2) to the report with `message_id`.
pub fn event_report_response(message_id: u16, event_type_id: u16, status: u16) -> Vec<u8> {
    encode(vec![
        uid(tags::AFFECTED_SOP_CLASS_UID, STORAGE_COMMITMENT),
        us(tags::COMMAND_FIELD, N_EVENT_REPORT_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
        uid(tags::AFFECTED_SOP_INSTANCE_UID, STORAGE_COMMITMENT_INSTANCE),
        us(tags::EVENT_TYPE_ID, event_type_id),
    ])
}

/// A Storage Commitment report (PS3.4 J.3.3.1.1): what the archive committed and what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub transaction_uid: String,
    pub committed: Vec<Reference>,
    /// With the Failure Reason (0008,1197), when given.
    pub failed: Vec<(Reference, Option<u16>)>,
}

/// Reads a report's data set sent in transfer syntax `ts_uid` (implicit or explicit VR
/// little endian).
pub fn parse_report(bytes: &[u8], ts_uid: &str) -> Result<Report, String> {
    let obj = identifier::read_at_most(bytes, ts_uid, MAX_REPORT_BYTES).map_err(|e| e.to_string())?;
    let text = |obj: &InMemDicomObject, tag, name: &str| -> Result<String, String> {
        let element = obj.element_opt(tag).map_err(|e| e.to_string())?.ok_or(format!("no {name}"))?;
        let value = element.to_str().map_err(|e| format!("{name}: {e}"))?;
        let value = value.trim_end_matches(['\0', ' ']);
        if value.is_empty() { Err(format!("{name} is empty")) } else { Ok(value.to_owned()) }
    };
    let reference = |item: &InMemDicomObject| -> Result<Reference, String> {
        Ok(Reference {
            sop_class_uid: text(item, tags::REFERENCED_SOP_CLASS_UID, "Referenced SOP Class UID")?,
            sop_instance_uid: text(item, tags::REFERENCED_SOP_INSTANCE_UID, "Referenced SOP Instance UID")?,
        })
    };
    let items = |tag| -> Result<Vec<InMemDicomObject>, String> {
        match obj.element_opt(tag).map_err(|e| e.to_string())? {
            Some(element) => Ok(element.items().map(<[InMemDicomObject]>::to_vec).unwrap_or_default()),
            None => Ok(Vec::new()),
        }
    };
    let committed = items(tags::REFERENCED_SOP_SEQUENCE)?.iter().map(reference).collect::<Result<Vec<_>, _>>()?;
    let mut failed = Vec::new();
    for item in items(tags::FAILED_SOP_SEQUENCE)? {
        let reason = item.element_opt(tags::FAILURE_REASON).ok().flatten().and_then(|e| e.to_int::<u16>().ok());
        failed.push((reference(&item)?, reason));
    }
    Ok(Report { transaction_uid: text(&obj, tags::TRANSACTION_UID, "Transaction UID")?, committed, failed })
}

/// A new Transaction UID: a UUID under `2.25` (PS3.5 B.2).
pub fn new_transaction_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

#[cfg(test)]
#[path = "commitment_tests.rs"]
mod tests;
