//! Why a message was refused, in the terms an HL7 ACK needs (table 0357 code, ERL location).
//!
//! Error texts are written by this module's callers from structural facts only (which field
//! is missing, which separator is wrong); they never quote field contents, so they are safe
//! to log and to send back.

use super::Header;

/// HL7 table 0357 (message error condition codes) values used by zenedge.
pub mod codes {
    /// 0: message accepted.
    pub const MESSAGE_ACCEPTED: u16 = 0;
    /// 100: segment sequence error (e.g. the first segment is not MSH).
    pub const SEGMENT_SEQUENCE_ERROR: u16 = 100;
    /// 101: required field missing.
    pub const REQUIRED_FIELD_MISSING: u16 = 101;
    /// 102: data type error (e.g. unusable separators).
    pub const DATA_TYPE_ERROR: u16 = 102;
    /// 103: table value not found.
    pub const TABLE_VALUE_NOT_FOUND: u16 = 103;
    /// 200: unsupported message type.
    pub const UNSUPPORTED_MESSAGE_TYPE: u16 = 200;
    /// 201: unsupported event code.
    pub const UNSUPPORTED_EVENT_CODE: u16 = 201;
    /// 202: unsupported processing id.
    pub const UNSUPPORTED_PROCESSING_ID: u16 = 202;
    /// 203: unsupported version id.
    pub const UNSUPPORTED_VERSION_ID: u16 = 203;
    /// 204: unknown key identifier.
    pub const UNKNOWN_KEY_IDENTIFIER: u16 = 204;
    /// 205: duplicate key identifier.
    pub const DUPLICATE_KEY_IDENTIFIER: u16 = 205;
    /// 206: application record locked.
    pub const APPLICATION_RECORD_LOCKED: u16 = 206;
    /// 207: application internal error (our default for AR/CR: "try again later").
    pub const APPLICATION_INTERNAL_ERROR: u16 = 207;
}

/// The standard description of a table 0357 code, as written into CWE.2 of ERR-3.
pub fn table_0357_text(code: u16) -> Option<&'static str> {
    Some(match code {
        0 => "Message accepted",
        100 => "Segment sequence error",
        101 => "Required field missing",
        102 => "Data type error",
        103 => "Table value not found",
        104 => "Value too long",
        200 => "Unsupported message type",
        201 => "Unsupported event code",
        202 => "Unsupported processing id",
        203 => "Unsupported version id",
        204 => "Unknown key identifier",
        205 => "Duplicate key identifier",
        206 => "Application record locked",
        207 => "Application internal error",
        _ => return None,
    })
}

/// One error condition, ready to be written into an ERR segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HL7 error {code}{}: {text}", location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
pub struct ErrorDetail {
    /// HL7 table 0357 code (see [`codes`]).
    pub code: u16,
    /// Where the problem is, in ERL notation written with `^` whatever the message's own
    /// separators: `SEG^sequence^field[^repetition^component^subcomponent]`, e.g. `MSH^1^10`.
    /// The ACK builder re-joins it with the message's component separator.
    pub location: Option<String>,
    /// Human-readable description; never contains field contents (patient data).
    pub text: String,
}

impl ErrorDetail {
    /// An error with a code, an optional ERL location and a text.
    pub fn new(code: u16, location: Option<&str>, text: impl Into<String>) -> Self {
        Self { code, location: location.map(str::to_owned), text: text.into() }
    }

    /// Code 207, for "we could not take it now" (an AR/CR answer: the sender should resend).
    pub fn application_internal_error(text: impl Into<String>) -> Self {
        Self::new(codes::APPLICATION_INTERNAL_ERROR, None, text)
    }
}

/// A message refused for structural reasons; the caller answers it with AE/CE.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct Rejection {
    /// What is wrong.
    pub error: ErrorDetail,
    /// As much of MSH as could be read (so the AE can be addressed and carry MSA-2): the
    /// whole header; with unusable MSH-2 separators a [`Header::minimal`] holding only MSH-10
    /// (when the field separator still finds it); `None` when there is no usable MSH at all.
    pub header: Option<Header>,
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
