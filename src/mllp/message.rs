//! What one MLLP frame is answered with: a message is parsed, stored through the domain's
//! request to the log (the answer waits for the commit), and acknowledged; a frame too large
//! or broken is refused with `AE` naming whatever MSH its head holds; a message that cannot be
//! stored now gets `AR`.

use std::net::SocketAddr;

use bytes::Bytes;

use super::context::MllpContext;
use crate::activity::Listener;
use crate::domain::{self, Hl7Outcome};
use crate::events::NewEvent;
use crate::hl7::ack::{self, AckCode};
use crate::hl7::{self, ErrorDetail, Received};
use crate::log::AppendError;
use crate::security::{AlertKind, Facts, PeerIdentity};

/// HL7 table 0357: application internal error — used for "could not take it now".
const APPLICATION_ERROR: u16 = 207;
/// HL7 table 0357: segment sequence error — used when the frame is too large to read.
const SEGMENT_SEQUENCE_ERROR: u16 = 100;

/// Answers the frames of one connection.
pub(super) struct Messages<'a> {
    pub ctx: &'a MllpContext,
    /// Who sent them (logs, and the `peer` of each event).
    pub peer: SocketAddr,
    /// The client certificate of a TLS connection (`peer_identity` of each event).
    pub identity: Option<&'a PeerIdentity>,
}

impl Messages<'_> {
    /// Parses, stores and answers one message. `None`: the sender asked for no answer.
    pub async fn handle(&self, payload: Bytes) -> Option<Vec<u8>> {
        let received = match hl7::read(&payload, &self.ctx.read_options) {
            Ok(received) => received,
            Err(rejection) => {
                self.ctx.metrics.frame_rejected("malformed");
                tracing::warn!(peer = %self.peer, code = rejection.error.code, reason = %rejection.error.text, "HL7 message refused (AE)");
                return self.answer(rejection.header.as_ref(), "unparsed", AckCode::Error, Some(&rejection.error));
            }
        };
        let message_type = received.summary.message_type();
        if let Some(error) =
            super::senders::refusal(&self.ctx.config.senders, self.identity, self.peer.ip(), received.sender())
        {
            return self.not_allowed(&received, &message_type, &error).await;
        }
        if self.ctx.shutdown.is_cancelled() {
            let error = unavailable("the receiver is shutting down; send again later");
            return self.answer(Some(&received.header), &message_type, AckCode::Reject, Some(&error));
        }
        let ack = self.answer(Some(&received.header), &message_type, AckCode::Accept, None);
        let request = self.append_request(&payload, &received, ack.clone().unwrap_or_default());
        match domain::hl7::store(&self.ctx.log, request).await {
            Ok(Hl7Outcome::Stored { seq, conflicts_with }) => {
                tracing::debug!(peer = %self.peer, seq, control_id = received.control_id(), message_type, "HL7 message stored");
                if let Some(first) = conflicts_with {
                    tracing::warn!(peer = %self.peer, seq, first, control_id = received.control_id(), "control id reused with different content; stored and flagged");
                }
                self.count(&message_type, &received, AckCode::Accept);
                self.ctx.app_acks.note(&received.header, self.peer);
                ack
            }
            Ok(Hl7Outcome::Duplicate { seq, ack }) => {
                tracing::info!(peer = %self.peer, seq, control_id = received.control_id(), "re-sent HL7 message answered with its stored ACK");
                self.count(&message_type, &received, AckCode::Accept);
                (!ack.is_empty()).then_some(ack)
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, control_id = received.control_id(), error = %e, "HL7 message not stored (AR)");
                let error = unavailable(&refusal_text(&e));
                self.answer(Some(&received.header), &message_type, AckCode::Reject, Some(&error))
            }
        }
    }

    /// Builds an acknowledgement; counts it unless it is the optimistic AA built before
    /// the commit (counted once the commit returned).
    fn answer(
        &self,
        header: Option<&hl7::Header>,
        message_type: &str,
        code: AckCode,
        error: Option<&ErrorDetail>,
    ) -> Option<Vec<u8>> {
        let ack = ack::build(header, code, error, &self.ctx.ack_ids.next(), jiff::Timestamp::now());
        if code != AckCode::Accept {
            let label = ack_label(header, code);
            self.ctx.metrics.hl7_answered(message_type, label);
            let why = format!("{label}: {}", error.map_or("refused", |e| e.text.as_str()));
            self.ctx.metrics.activity.answered(self.listener(), Some(&why));
        }
        ack
    }

    /// The listener the connection came in on (a TLS connection always has a client
    /// certificate: the MLLP/TLS listener requires one).
    fn listener(&self) -> Listener {
        if self.identity.is_some() { Listener::MllpTls } else { Listener::Mllp }
    }

    fn count(&self, message_type: &str, received: &Received, code: AckCode) {
        self.ctx.metrics.hl7_answered(message_type, ack_label(Some(&received.header), code));
        self.ctx.metrics.activity.answered(self.listener(), None);
        if received.summary.charset_fallback {
            self.ctx.metrics.hl7_charset_fallbacks.inc();
        }
    }

    fn append_request(&self, payload: &[u8], received: &Received, ack: Vec<u8>) -> NewEvent {
        domain::received_event_from(payload, received, &self.peer.to_string(), self.identity.cloned(), ack)
    }

    /// A message its connection may not send (`[[mllp.senders]]`): `AR` with the reason, not
    /// stored, and a security alert, in the audit trail before the answer.
    async fn not_allowed(&self, received: &Received, message_type: &str, error: &ErrorDetail) -> Option<Vec<u8>> {
        let (application, facility) = received.sender();
        let listener = if self.identity.is_some() { "mllp_tls" } else { "mllp" };
        let facts = Facts::connection(listener, self.peer, error.text.clone())
            .identity(self.identity)
            .detail("sending_application", application)
            .detail("sending_facility", facility)
            .detail("control_id", received.control_id());
        self.ctx.alerts.alert_recorded(AlertKind::SenderNotAllowed, facts).await;
        self.answer(Some(&received.header), message_type, AckCode::Reject, Some(error))
    }

    /// A frame over `max_message_bytes`: refused with AE (the sender must not re-send it
    /// unchanged).
    pub fn oversized(&self, head: &[u8], len: usize) -> Option<Vec<u8>> {
        let limit = self.ctx.config.max_message_bytes;
        tracing::warn!(peer = %self.peer, len, limit, "MLLP frame over the size limit refused (AE)");
        self.refuse_frame(head, "oversized", format!("message of {len} bytes exceeds the limit of {limit} bytes"))
    }

    /// A frame with a stray `0x1C` inside: what reached us is not the message that was
    /// sent, so it is refused with AE rather than stored truncated.
    pub fn malformed(&self, head: &[u8], len: usize) -> Option<Vec<u8>> {
        tracing::warn!(peer = %self.peer, len, "MLLP frame with an end-block byte inside the message refused (AE)");
        let text = "the frame holds an MLLP end-block byte (0x1C) inside the message; it was not stored";
        self.refuse_frame(head, "malformed_frame", text.to_owned())
    }

    /// Answers AE for a frame that was not read as a message, naming it by whatever MSH the
    /// head of the frame holds.
    fn refuse_frame(&self, head: &[u8], reason: &str, text: String) -> Option<Vec<u8>> {
        self.ctx.metrics.frame_rejected(reason);
        let error = ErrorDetail { code: SEGMENT_SEQUENCE_ERROR, location: None, text };
        self.answer(header_of(head).as_ref(), reason, AckCode::Error, Some(&error))
    }
}

/// The MSH of a frame whose body we did not keep: parse just its first segment.
fn header_of(head: &[u8]) -> Option<hl7::Header> {
    let end = head.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(head.len());
    match hl7::read(&head[..end], &hl7::ReadOptions::default()) {
        Ok(received) => Some(received.header),
        Err(rejection) => rejection.header,
    }
}

fn unavailable(text: &str) -> ErrorDetail {
    ErrorDetail { code: APPLICATION_ERROR, location: None, text: text.to_owned() }
}

fn refusal_text(e: &AppendError) -> String {
    match e {
        AppendError::DiskReserve { .. } => {
            "message not stored: the receiver's free disk space is below its disk reserve; send again later".into()
        }
        AppendError::Unavailable => "message not stored: the receiver cannot store now; send again later".into(),
        AppendError::Encode(_) => "message not stored: internal encoding error; send again later".into(),
    }
}

/// The MSA-1 code sent (CA/CE/CR in enhanced mode), for the metrics.
fn ack_label(header: Option<&hl7::Header>, code: AckCode) -> &'static str {
    code.msa_code(header.is_some_and(hl7::Header::is_enhanced_mode))
}
