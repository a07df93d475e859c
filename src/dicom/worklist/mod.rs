//! The modality worklist SCP: C-FIND of the Modality Worklist Information Model – FIND
//! (PS3.4 K.6.1), answered from the worklist projection
//! ([`crate::projections::worklist`]).
//!
//! One C-FIND: the command arrives ([`Pending`]), then its identifier in one or more data
//! fragments (at most [`identifier::MAX_IDENTIFIER_BYTES`]). [`answer`] reads it
//! ([`identifier`]), turns it into conditions ([`keys`], [`matching`]), reads the candidates
//! from the projection's most selective index in one read transaction (off the async
//! threads), and sends one Pending response (0xFF00, 0xFF01 when a key could not be matched)
//! with each matching step's identifier, then Success. Before each Pending it looks, without
//! waiting, for a PDU from the peer: a C-CANCEL for this message ends the answer with Cancel
//! (0xFE00). Failures are final statuses with an Error Comment: 0xA900 for an identifier
//! that cannot be read or does not fit the model, 0xA700 when the projection cannot be read,
//! 0xC000 for an answer that cannot be encoded.
//!
//! Each query is an audit record (Query, with the calling AE, its address, and every patient
//! the answer holds) committed through the log writer before the first match is sent, as the
//! API's reads are; when it cannot be committed the query fails with 0xA700 and no match is
//! sent. Logs name the calling AE,
//! the counts and the time, never a key's value.
//!
//! Character sets: items hold text as Unicode. Each answer declares the Specific Character
//! Set it is written in: none for ASCII, `ISO_IR 100` for text Latin-1 holds unless the
//! requester listed `ISO_IR 192`, else `ISO_IR 192`. Never a charset that cannot hold the
//! text.

pub mod identifier;
pub mod keys;
pub mod matching;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

use super::DicomContext;
use super::dimse::{self, Request, status};
use super::wire::{Wire, WireError};
use crate::activity::Listener;
use crate::net::Stream;
use crate::projections::views::worklist_items_where;
use crate::projections::worklist::WorklistItem;
use crate::security::PeerIdentity;
use keys::Query;

/// Modality Worklist Information Model – FIND.
pub const MWL_FIND: &str = "1.2.840.10008.5.1.4.31";

/// A C-FIND-RQ whose identifier is being received.
#[derive(Debug)]
pub struct Pending {
    pub message_id: u16,
    pub context_id: u8,
    pub sop_class_uid: String,
    pub transfer_syntax: String,
    data: Vec<u8>,
    /// More than the identifier may hold arrived: read to its end, then refused.
    too_large: bool,
}

impl Pending {
    pub fn new(message_id: u16, context_id: u8, sop_class_uid: String, transfer_syntax: String) -> Pending {
        Pending { message_id, context_id, sop_class_uid, transfer_syntax, data: Vec::new(), too_large: false }
    }

    /// One fragment of the identifier.
    pub fn add(&mut self, fragment: &[u8]) {
        if self.data.len() + fragment.len() > identifier::MAX_IDENTIFIER_BYTES {
            self.too_large = true;
            self.data = Vec::new();
        } else if !self.too_large {
            self.data.extend_from_slice(fragment);
        }
    }
}

/// Who asks, for the audit record and the calling-AE filter.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub calling_ae: &'a str,
    pub called_ae: &'a str,
    pub peer: SocketAddr,
    pub identity: Option<&'a PeerIdentity>,
    /// The largest PDU the peer takes.
    pub max_pdu: u32,
}

/// Why an answer ended the association.
#[derive(Debug, thiserror::Error)]
pub enum AnswerEnd {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("aborted by the peer")]
    PeerAbort,
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Answers one complete C-FIND (see the module doc).
pub async fn answer<S: Stream>(
    wire: &mut Wire<S>,
    find: Pending,
    asker: Asker<'_>,
    ctx: &DicomContext,
) -> Result<(), AnswerEnd> {
    let started = Instant::now();
    let (message_id, context_id) = (find.message_id, find.context_id);
    let final_status = |status, comment: Option<&str>| dimse::find_response(message_id, MWL_FIND, status, comment);
    let query = match read_query(&find, asker, ctx) {
        Ok(query) => query,
        Err(comment) => {
            ctx.metrics.worklist_query("refused");
            ctx.metrics.activity.answered(Listener::Worklist, Some(&format!("query refused: {comment}")));
            tracing::warn!(peer = %asker.peer, calling_ae = %asker.calling_ae, reason = %comment, "worklist query refused");
            let rsp = final_status(status::IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, Some(&comment));
            return send_command(wire, context_id, rsp).await;
        }
    };
    let hints = query.hints(ctx.config.worklist_show_completed);
    let (reader, max) = (ctx.reader.clone(), ctx.config.worklist_max_results);
    let found = tokio::task::spawn_blocking(move || {
        let hits = worklist_items_where(&reader, &hints, max, |item| query.matches(item));
        (query, hits)
    })
    .await;
    let found = match found {
        Ok((query, Ok(hits))) => Ok((query, hits)),
        Ok((_, Err(e))) => Err(format!("the worklist cannot be read: {e}")),
        Err(e) => Err(format!("the worklist query task failed: {e}")),
    };
    let (query, hits) = match found {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(peer = %asker.peer, %error, "worklist query failed");
            ctx.metrics.worklist_query("failed");
            ctx.metrics.activity.answered(Listener::Worklist, Some(&format!("query failed: {error}")));
            return send_command(
                wire,
                context_id,
                final_status(status::OUT_OF_RESOURCES, Some("worklist unavailable")),
            )
            .await;
        }
    };
    if let Err(comment) = audit(ctx, asker, &hits.items).await {
        ctx.metrics.worklist_query("failed");
        ctx.metrics.activity.answered(Listener::Worklist, Some(&format!("query failed: {comment}")));
        return send_command(wire, context_id, final_status(status::OUT_OF_RESOURCES, Some(&comment))).await;
    }
    let pending_status = if query.unsupported { status::PENDING_WARNING } else { status::PENDING };
    let mut sent = 0;
    let mut outcome = (status::SUCCESS, None::<String>, "success");
    for item in &hits.items {
        if cancelled(wire, message_id).await? {
            outcome = (status::CANCEL, None, "cancel");
            break;
        }
        let (obj, charset) = with_charset(query.answer(item), query.utf8);
        let data = match identifier::write(&obj, &find.transfer_syntax, charset) {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(peer = %asker.peer, error = %e, "worklist answer cannot be encoded");
                outcome = (status::CANNOT_UNDERSTAND, Some("an answer cannot be encoded".into()), "failed");
                break;
            }
        };
        send_command(wire, context_id, dimse::find_response(message_id, MWL_FIND, pending_status, None)).await?;
        send_data(wire, context_id, data, asker.max_pdu).await?;
        ctx.metrics.worklist_items.inc();
        sent += 1;
    }
    if hits.truncated && outcome.0 == status::SUCCESS {
        tracing::warn!(peer = %asker.peer, max = ctx.config.worklist_max_results, "worklist answer cut at dicom.worklist_max_results");
    }
    send_command(wire, context_id, final_status(outcome.0, outcome.1.as_deref())).await?;
    ctx.metrics.worklist_query(outcome.2);
    let failed = (outcome.2 == "failed").then(|| format!("query failed: {}", outcome.1.as_deref().unwrap_or("")));
    ctx.metrics.activity.answered(Listener::Worklist, failed.as_deref());
    ctx.metrics.worklist_query_seconds.observe(started.elapsed().as_secs_f64());
    tracing::info!(peer = %asker.peer, calling_ae = %asker.calling_ae, items = sent, outcome = outcome.2, micros = started.elapsed().as_micros() as u64, "worklist query answered");
    Ok(())
}

/// The query of a received identifier, or the Error Comment of its refusal.
fn read_query(find: &Pending, asker: Asker<'_>, ctx: &DicomContext) -> Result<Query, String> {
    if find.too_large {
        return Err(format!("identifier larger than {} bytes", identifier::MAX_IDENTIFIER_BYTES));
    }
    if find.sop_class_uid != MWL_FIND {
        return Err("not the Modality Worklist Information Model - FIND".into());
    }
    let obj = identifier::read(&find.data, &find.transfer_syntax).map_err(|e| e.to_string())?;
    let mut query = Query::new(obj).map_err(|e| e.to_string())?;
    if ctx.config.worklist_filter_by_calling_ae {
        query.restrict_station(asker.calling_ae);
    }
    Ok(query)
}

/// The answer with its Specific Character Set (see the module doc), and the charset term.
fn with_charset(
    mut obj: dicom_object::InMemDicomObject,
    utf8_asked: bool,
) -> (dicom_object::InMemDicomObject, Option<&'static str>) {
    let mut needs = 0; // 0 ASCII, 1 Latin-1, 2 beyond
    for element in obj.iter() {
        needs = needs.max(text_needs(element));
    }
    let charset = match (needs, utf8_asked) {
        (0, false) => None,
        (1, false) => Some("ISO_IR 100"),
        _ => Some("ISO_IR 192"),
    };
    if let Some(cs) = charset {
        obj.put(DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, PrimitiveValue::from(cs)));
    }
    (obj, charset)
}

/// 0: ASCII, 1: Latin-1, 2: beyond Latin-1, over an element and its items.
fn text_needs(element: &DataElement<dicom_object::InMemDicomObject>) -> u8 {
    if let Some(items) = element.items() {
        return items.iter().flat_map(|i| i.iter()).map(text_needs).max().unwrap_or(0);
    }
    let Ok(text) = element.to_str() else { return 0 };
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                0
            } else if (c as u32) < 0x100 {
                1
            } else {
                2
            }
        })
        .max()
        .unwrap_or(0)
}

/// Whether the peer has sent a C-CANCEL for `message_id`, looked for without waiting: the
/// read is polled once (a zero timeout would wait for the timer's next millisecond tick, a
/// millisecond per answer). Dropping the read loses nothing: bytes it took stay in the
/// wire's buffer for the next read.
async fn cancelled<S: Stream>(wire: &mut Wire<S>, message_id: u16) -> Result<bool, AnswerEnd> {
    let pdu = {
        let mut read = std::pin::pin!(wire.read(dimse::MAX_COMMAND_BYTES as u32));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match read.as_mut().poll(&mut cx) {
            std::task::Poll::Pending => return Ok(false),
            std::task::Poll::Ready(pdu) => pdu?,
        }
    };
    match pdu {
        Pdu::PData { data } => {
            for pdv in data {
                let request = (pdv.value_type == PDataValueType::Command && pdv.is_last)
                    .then(|| dimse::parse(&pdv.data).ok())
                    .flatten();
                match request {
                    Some(Request::Cancel { message_id: id }) if id == message_id => return Ok(true),
                    Some(Request::Cancel { .. }) => {}
                    _ => return Err(AnswerEnd::Protocol("a request arrived while a C-FIND was answered".into())),
                }
            }
            Ok(false)
        }
        Pdu::AbortRQ { .. } => Err(AnswerEnd::PeerAbort),
        other => Err(AnswerEnd::Protocol(format!("{} while a C-FIND was answered", other.short_description()))),
    }
}

/// The Query audit record of an answer (every patient it is about to send); the Error
/// Comment when it cannot be committed.
async fn audit(ctx: &DicomContext, asker: Asker<'_>, items: &[WorklistItem]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    let patients: Vec<String> =
        items.iter().filter_map(|i| i.patient_id.clone()).filter(|id| seen.insert(id.clone())).collect();
    let record = crate::audit::kinds::dicom_query(
        (&ctx.edge_id, asker.called_ae),
        asker.calling_ae,
        &asker.peer.to_string(),
        asker.identity,
        MWL_FIND,
        &patients,
        jiff::Timestamp::now(),
    );
    crate::audit::record(&ctx.log, vec![record]).await.map_err(|e| {
        tracing::warn!(peer = %asker.peer, error = %e, "worklist query failed: its audit record could not be committed");
        "out of resources: audit trail unavailable".to_owned()
    })
}

async fn send_command<S: Stream>(wire: &mut Wire<S>, context_id: u8, command: Vec<u8>) -> Result<(), AnswerEnd> {
    let pdv = PDataValue {
        presentation_context_id: context_id,
        value_type: PDataValueType::Command,
        is_last: true,
        data: command,
    };
    wire.write(&Pdu::PData { data: vec![pdv] }).await?;
    Ok(())
}

/// Sends a data set in fragments that fit the peer's largest PDU.
async fn send_data<S: Stream>(
    wire: &mut Wire<S>,
    context_id: u8,
    data: Vec<u8>,
    max_pdu: u32,
) -> Result<(), AnswerEnd> {
    // A PDV item adds 6 bytes (length, context id, control header) to its fragment.
    let chunk = (max_pdu.clamp(64, 1 << 20) as usize) - 6;
    let count = data.len().div_ceil(chunk).max(1);
    let empty: &[u8] = &[];
    let fragments = data.chunks(chunk).chain(data.is_empty().then_some(empty));
    for (i, fragment) in fragments.enumerate() {
        let pdv = PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Data,
            is_last: i + 1 == count,
            data: fragment.to_vec(),
        };
        wire.write(&Pdu::PData { data: vec![pdv] }).await?;
    }
    Ok(())
}
