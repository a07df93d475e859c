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
mod tests {
    use super::*;

    fn header(text: &str) -> Header {
        Header::read(&Message::parse(text, Charset::Ascii).unwrap())
    }

    #[test]
    fn raw_fields_keep_their_escapes() {
        let h = header(
            "MSH|^~\\&|HIS^1.2.3^ISO|GEN\\T\\HOSP|ZE|RAD|20260101||ORM^O01^ORM_O01|ID\\F\\1|P|2.3.1|||AL|NE||8859/1\r",
        );
        assert_eq!(h.sending_application, "HIS^1.2.3^ISO");
        assert_eq!(h.sending_facility, "GEN\\T\\HOSP");
        assert_eq!(h.control_id, "ID\\F\\1");
        assert_eq!(
            (h.message_code.as_str(), h.trigger_event.as_str(), h.message_structure.as_str()),
            ("ORM", "O01", "ORM_O01")
        );
        assert_eq!((h.accept_ack_type.as_str(), h.application_ack_type.as_str()), ("AL", "NE"));
        assert_eq!(h.character_set, "8859/1");
        assert_eq!(h.version(), Some((2, 3)));
        assert!(h.is_enhanced_mode());
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn missing_message_code_trigger_or_control_id_is_a_required_field_error() {
        let cases = [
            ("MSH|^~\\&|A|B|C|D|||^A01|1|P|2.5", "MSH^1^9"),
            ("MSH|^~\\&|A|B|C|D|||ADT|1|P|2.5", "MSH^1^9"),
            ("MSH|^~\\&|A|B|C|D|||ADT^A01||P|2.5", "MSH^1^10"),
            ("MSH|^~\\&|A|B|C|D|||ADT^A01|\"\"|P|2.5", "MSH^1^10"),
            ("MSH|^~\\&|A|B|C|D", "MSH^1^9"),
            ("MSH|^~\\&|A|B|C|D|||ADT^A01|\\H\\|P|2.5", "MSH^1^10"),
        ];
        for (text, location) in cases {
            let err = header(text).check().unwrap_err();
            assert_eq!((err.code, err.location.as_deref()), (101, Some(location)), "{text}");
        }
    }

    #[test]
    fn v21_trigger_event_is_taken_from_evn1() {
        let h = header("MSH|^~\\&|A|B|C|D|||ADT|1|P|2.1\rEVN|A04|20260101\r");
        assert_eq!(h.trigger_event, "A04");
        assert_eq!(h.check(), Ok(()));
    }

    #[test]
    fn msh10_is_found_by_the_field_separator_when_msh2_is_unusable() {
        let id = |raw: &[u8]| control_id_only(raw);
        assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|CTRL-7|P|2.5\rPID|1"), Some("CTRL-7".into()));
        assert_eq!(id(b"MSH#^^\\&#A#B#C#D#2026##ADT*A01#X|Y#P"), Some("X\\F\\Y".into()), "escaped for the ACK");
        assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|\rPID|1|2|3|4|5|6|7|8|9"), None, "MSH-10 empty");
        assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01"), None, "no MSH-10");
        assert_eq!(id(b"MSH|^~|RIS|H|ZE|RAD|20260314||ORM^O01|\"\"|P"), None, "the explicit null");
        assert_eq!(id(b"MSHA^~A1A2A3A4A5A6A7A8A9"), None, "no usable field separator");
        assert_eq!(id(b"MSH|RIS|H|ZE|RAD|20260314||ORM^O01|C1|P|2.5"), None, "MSH-2 left out: fields shifted");
        assert_eq!(id(b"MSH||RIS|H|ZE|RAD|20260314||ORM^O01|C1|P|2.5"), None, "MSH-2 empty");
        assert_eq!(id(b"MSH|^~|RIS|H\xFC|ZE|RAD|20260314||ORM^O01|C1|P"), None, "not plain ASCII before it");
    }

    #[test]
    fn version_parses_major_and_minor() {
        let version = |v: &str| header(&format!("MSH|^~\\&|||||||ADT^A01|1|P|{v}")).version();
        assert_eq!(version("2.5.1"), Some((2, 5)));
        assert_eq!(version("2.4"), Some((2, 4)));
        assert_eq!(version("2.10^DEU"), Some((2, 10)));
        assert_eq!(version("2"), Some((2, 0)));
        assert_eq!(version(""), None);
        assert_eq!(version("v2.x"), None);
    }
}
