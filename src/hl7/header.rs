//! The MSH facts an acknowledgement needs, kept in raw (still escaped) form so that the
//! ACK can copy them back byte for byte.

use super::charset::Charset;
use super::error::{ErrorDetail, codes};
use super::escape::unescape;
use super::parse::Message;
use super::separators::Separators;

/// The inbound message's header, as the ACK builder needs it.
///
/// Text fields hold the field as written (escape sequences not decoded), converted to
/// Rust text from the message charset; they are empty when the message left them empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// MSH-1/MSH-2: the ACK uses the same separators.
    pub separators: Separators,
    /// The charset the message was decoded with; the ACK is encoded with it.
    pub charset: Charset,
    /// MSH-3 sending application (whole HD); becomes the ACK's MSH-5.
    pub sending_application: String,
    /// MSH-4 sending facility; becomes the ACK's MSH-6.
    pub sending_facility: String,
    /// MSH-5 receiving application; becomes the ACK's MSH-3.
    pub receiving_application: String,
    /// MSH-6 receiving facility; becomes the ACK's MSH-4.
    pub receiving_facility: String,
    /// MSH-9.1 message code, e.g. `ORM`.
    pub message_code: String,
    /// MSH-9.2 trigger event, e.g. `O01` (EVN-1 when MSH-9.2 is empty: v2.1 style);
    /// the ACK's MSH-9 is `ACK^<trigger>^ACK`.
    pub trigger_event: String,
    /// MSH-9.3 message structure, e.g. `ORM_O01`.
    pub message_structure: String,
    /// MSH-10 message control id; echoed in MSA-2.
    pub control_id: String,
    /// MSH-11 processing id (whole field); echoed in the ACK.
    pub processing_id: String,
    /// MSH-12 version id (whole field); echoed in the ACK, and picks the ERR layout.
    pub version_id: String,
    /// MSH-15 accept acknowledgment type (`AL`, `NE`, `ER`, `SU`); non-empty means
    /// enhanced acknowledgment mode.
    pub accept_ack_type: String,
    /// MSH-16 application acknowledgment type.
    pub application_ack_type: String,
    /// MSH-18 character set (whole field, all repetitions); echoed in the ACK.
    pub character_set: String,
}

impl Header {
    /// Reads the header of a parsed message (never fails: missing fields are empty).
    pub fn read(message: &Message<'_>) -> Self {
        let msh = message.msh();
        let raw = |n: usize| msh.field(n).raw().to_owned();
        let msh9 = msh.field(9);
        let mut trigger_event = msh9.component(2).raw().to_owned();
        if trigger_event.is_empty()
            && let Some(evn) = message.segment("EVN")
        {
            // EVN-1 event type code (v2.1–v2.3; withdrawn later).
            trigger_event = evn.field(1).component(1).raw().to_owned();
        }
        Self {
            separators: *message.separators(),
            charset: message.charset(),
            sending_application: raw(3),
            sending_facility: raw(4),
            receiving_application: raw(5),
            receiving_facility: raw(6),
            message_code: msh9.component(1).raw().to_owned(),
            trigger_event,
            message_structure: msh9.component(3).raw().to_owned(),
            control_id: raw(10),
            processing_id: raw(11),
            version_id: raw(12),
            accept_ack_type: raw(15),
            application_ack_type: raw(16),
            character_set: raw(18),
        }
    }

    /// The header of an ACK for input whose own separators are unknown: the recommended
    /// separators, ASCII, v2.5, processing id `P`, and MSH-10 `control_id` (already escaped
    /// for those separators; empty when unknown) to echo in MSA-2.
    pub fn minimal(control_id: String) -> Self {
        Self {
            separators: Separators::default(),
            charset: Charset::Ascii,
            sending_application: String::new(),
            sending_facility: String::new(),
            receiving_application: String::new(),
            receiving_facility: String::new(),
            message_code: String::new(),
            trigger_event: String::new(),
            message_structure: String::new(),
            control_id,
            processing_id: "P".to_owned(),
            version_id: "2.5".to_owned(),
            accept_ack_type: String::new(),
            application_ack_type: String::new(),
            character_set: String::new(),
        }
    }

    /// Checks the fields without which a message cannot be stored or acknowledged:
    /// MSH-9.1, MSH-9.2 and MSH-10 (code 101, required field missing).
    pub fn check(&self) -> Result<(), ErrorDetail> {
        // Empty, the explicit null, or nothing left after unescaping (e.g. only `\H\`).
        let missing = |raw: &str| raw == "\"\"" || unescape(raw, &self.separators, self.charset).is_empty();
        let error = |location, text| Err(ErrorDetail::new(codes::REQUIRED_FIELD_MISSING, Some(location), text));
        if missing(&self.message_code) {
            return error("MSH^1^9", "MSH-9 (message type) has no message code");
        }
        if missing(&self.trigger_event) {
            return error("MSH^1^9", "MSH-9 (message type) has no trigger event");
        }
        if missing(&self.control_id) {
            return error("MSH^1^10", "MSH-10 (message control id) is empty");
        }
        Ok(())
    }

    /// MSH-12.1 as (major, minor), e.g. `2.5.1` → (2, 5); `None` if it does not parse.
    pub fn version(&self) -> Option<(u32, u32)> {
        let id = self.version_id.split(self.separators.component).next()?;
        let mut parts = id.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some((major, minor))
    }

    /// Enhanced acknowledgment mode: MSH-15 is present (and not the explicit null).
    pub fn is_enhanced_mode(&self) -> bool {
        !self.accept_ack_type.trim().is_empty() && self.accept_ack_type != "\"\""
    }
}

/// MSH-10 of a message whose MSH-2 is unusable, found by counting MSH-1 field separators,
/// escaped for [`Header::minimal`]'s separators. `None` unless MSH-1 is a valid separator,
/// MSH-2 is there and made of separator characters (just too few, too many or repeated: a
/// MSH-2 of letters, or none, means the fields may be shifted), and the MSH segment up to
/// MSH-10 is plain printable ASCII (in another charset a separator byte could be part of a
/// character, and counting would find the wrong field).
pub(crate) fn control_id_only(msh: &[u8]) -> Option<String> {
    use super::separators::is_valid_separator;
    let field = *msh.get(3).filter(|&&b| is_valid_separator(b))?;
    let segment = msh.split(|&b| b == b'\r' || b == b'\n').next()?;
    // `MSH`, MSH-2, MSH-3 … MSH-10: the tenth piece.
    let mut pieces = segment.split(|&b| b == field);
    let msh2 = pieces.clone().nth(1)?;
    if msh2.is_empty() || !msh2.iter().all(|&b| is_valid_separator(b)) {
        return None;
    }
    let before: usize = pieces.by_ref().take(9).map(|p| p.len() + 1).sum();
    let value = pieces.next()?;
    let plain = segment[..before + value.len()].iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    if !plain || value.is_empty() || value == b"\"\"" {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    Some(super::escape::escape(text, &Separators::default()))
}

#[cfg(test)]
#[path = "header_tests.rs"]
mod tests;
