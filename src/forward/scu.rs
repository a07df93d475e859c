//! One association to a DICOM destination, sending stored instances as they are.
//!
//! Each instance goes as the data set of its Part 10 file, in the transfer syntax it was
//! received in (the file meta's, recorded in its `InstanceStored`): the association proposes
//! one presentation context per (SOP class, transfer syntax) of its instances, each with that
//! one syntax, and an instance whose context the archive refuses is a per-instance refusal,
//! never transcoded. The data set is read from disk in fragments no larger than the archive's
//! maximum PDU allows (PS3.8 9.3.5: the PDV item's 6 bytes of header count), so memory stays
//! at one fragment whatever the instance's size. Every fragment has an even length, as PS3.8
//! E.2 requires: a data set of odd length (a deflated one: PS3.5 A.5 says its stream is padded
//! with one trailing NUL, which a sender may have left out) gets that NUL appended to its
//! last fragment. Without it a DCMTK-based archive (Orthanc) aborts the association ("Odd
//! Fragment Length") every time the instance is sent.
//!
//! Blocking: dicom-ul's requestor on a `std::net::TcpStream`, run on the forwarding threads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};

use crate::config::Destination;
use crate::dicom::dimse::{self, MAX_COMMAND_BYTES};

/// An instance to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its `InstanceStored`.
    pub seq: u64,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub path: PathBuf,
}

/// What became of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// C-STORE Success or a warning (`0xB000`, `0xB006`, `0xB007`).
    Stored { status: u16, comment: Option<String> },
    /// The archive refused it (a failure status, no context for its syntax), or its file is
    /// gone: a dead letter.
    Refused { status: Option<u16>, reason: String },
}

/// The association failed (connection, rejection, abort, timeout, protocol): nothing of
/// the group counts, it is sent again after a backoff.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

fn transient(what: &str) -> impl Fn(dicom_ul::association::Error) -> Transient + '_ {
    move |e| Transient(format!("{what}: {e}"))
}

/// Sends `items` over one association to `destination`; one answer per item, in order.
pub fn send_group(destination: &Destination, state_dir: &Path, items: &[Item]) -> Result<Vec<Sent>, Transient> {
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(destination.calling_ae.as_str())
        .called_ae_title(destination.called_ae.as_str())
        .max_pdu_length(destination.max_pdu)
        .connection_timeout(destination.timeout)
        .read_timeout(destination.timeout)
        .write_timeout(destination.timeout);
    let mut proposed: Vec<(&str, &str)> = Vec::new();
    for item in items {
        let pair = (item.sop_class_uid.as_str(), item.transfer_syntax_uid.as_str());
        if !proposed.contains(&pair) && proposed.len() < 128 {
            proposed.push(pair);
            options = options.with_presentation_context(pair.0, vec![pair.1]);
        }
    }
    let address = format!("{}:{}", destination.host, destination.port);
    let mut assoc = match options.establish_with(&address) {
        Ok(assoc) => assoc,
        // The archive accepted none of the group's (SOP class, transfer syntax) pairs: each
        // instance's refusal, not a failure to retry forever.
        Err(dicom_ul::association::Error::NoAcceptedPresentationContexts { .. }) => {
            return Ok(items.iter().map(no_context).collect());
        }
        Err(e) => return Err(transient("association")(e)),
    };
    no_delay(&mut assoc);
    let mut answers = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let context = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.reason == PresentationContextResultReason::Acceptance
                    && pc.abstract_syntax == item.sop_class_uid
                    && pc.transfer_syntax == item.transfer_syntax_uid
            })
            .map(|pc| pc.id);
        let Some(context) = context else {
            answers.push(no_context(item));
            continue;
        };
        let file = match dataset_of(&state_dir.join(&item.path)) {
            Ok(file) => file,
            Err(e) => {
                answers.push(Sent::Refused { status: None, reason: format!("the instance file cannot be read: {e}") });
                continue;
            }
        };
        let message_id = (n % 0xFFFF) as u16 + 1;
        answers.push(store(&mut assoc, context, message_id, item, file)?);
    }
    let _ = assoc.release();
    Ok(answers)
}

/// Turns Nagle's algorithm off on the association's socket: a C-STORE is a small command PDU,
/// then the data, then a wait for the answer, and with Nagle on (and the archive's delayed
/// ACKs) each small write waits up to 40 ms for the previous one's ACK.
pub(super) fn no_delay(assoc: &mut ClientAssociation<std::net::TcpStream>) {
    if let Err(e) = assoc.inner_stream().set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set on a forwarding association");
    }
}

/// The refusal of an instance whose (SOP class, transfer syntax) the archive did not accept.
fn no_context(item: &Item) -> Sent {
    Sent::Refused {
        status: None,
        reason: format!(
            "the archive accepts no presentation context for SOP class {} in transfer syntax {}",
            item.sop_class_uid, item.transfer_syntax_uid
        ),
    }
}

/// One C-STORE: the command, the data set in fragments, the answer.
fn store(
    assoc: &mut ClientAssociation<std::net::TcpStream>,
    context: u8,
    message_id: u16,
    item: &Item,
    (mut file, mut remaining): (File, u64),
) -> Result<Sent, Transient> {
    let command = dimse::store_request(message_id, &item.sop_class_uid, &item.sop_instance_uid);
    let pdv = PDataValue {
        presentation_context_id: context,
        value_type: PDataValueType::Command,
        is_last: true,
        data: command,
    };
    assoc.send(&Pdu::PData { data: vec![pdv] }).map_err(transient("sending a command"))?;
    let peer_max = match assoc.acceptor_max_pdu_length() {
        0 => u32::MAX,
        n => n,
    };
    let fragment = fragment_len(peer_max);
    let pad = remaining % 2 == 1;
    let mut buffer = vec![0u8; fragment.min(remaining.max(1) as usize)];
    loop {
        let n = buffer.len().min(remaining as usize);
        file.read_exact(&mut buffer[..n]).map_err(|e| Transient(format!("reading the instance file: {e}")))?;
        remaining -= n as u64;
        let mut data = buffer[..n].to_vec();
        if remaining == 0 && pad {
            data.push(0);
        }
        let pdv = PDataValue {
            presentation_context_id: context,
            value_type: PDataValueType::Data,
            is_last: remaining == 0,
            data,
        };
        assoc.send(&Pdu::PData { data: vec![pdv] }).map_err(transient("sending data"))?;
        if remaining == 0 {
            break;
        }
    }
    let answer = answer(assoc)?;
    if answer.message_id_being_responded_to != message_id {
        return Err(Transient(format!(
            "the archive answered message {} to message {message_id}",
            answer.message_id_being_responded_to
        )));
    }
    Ok(match answer.status {
        0x0000 | 0xB000 | 0xB006 | 0xB007 => Sent::Stored { status: answer.status, comment: answer.error_comment },
        status => Sent::Refused {
            status: Some(status),
            reason: answer.error_comment.unwrap_or_else(|| format!("C-STORE status 0x{status:04X}")),
        },
    })
}

/// The data set bytes per P-DATA fragment for an archive whose maximum PDU is `peer_max`:
/// the PDV item's length field, context id and control header take 6 bytes of it (PS3.8
/// 9.3.5), and a fragment's length is even (PS3.8 E.2), so it is rounded down to even.
pub fn fragment_len(peer_max: u32) -> usize {
    ((peer_max.min(1 << 20) as usize).saturating_sub(6) & !1).max(2)
}

/// The next command set the archive sends (a C-STORE-RSP).
fn answer(assoc: &mut ClientAssociation<std::net::TcpStream>) -> Result<dimse::StoreAnswer, Transient> {
    let command = command_set(assoc, "a C-STORE-RSP")?;
    dimse::parse_store_response(&command).map_err(|e| Transient(e.to_string()))
}

/// The next command set the archive sends, where `what` (a response) is due: its bytes, at
/// most [`MAX_COMMAND_BYTES`].
pub(super) fn command_set(
    assoc: &mut ClientAssociation<std::net::TcpStream>,
    what: &str,
) -> Result<Vec<u8>, Transient> {
    let mut command = Vec::new();
    loop {
        match assoc.receive().map_err(|e| Transient(format!("waiting for {what}: {e}")))? {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type != PDataValueType::Command {
                        return Err(Transient(format!("the archive sent data where {what} was due")));
                    }
                    command.extend_from_slice(&pdv.data);
                    if command.len() > MAX_COMMAND_BYTES {
                        return Err(Transient("the archive's answer is too large".into()));
                    }
                    if pdv.is_last {
                        return Ok(command);
                    }
                }
            }
            other => {
                return Err(Transient(format!("the archive sent {} instead of {what}", other.short_description())));
            }
        }
    }
}

/// The stored Part 10 file, positioned at its data set, and the data set's length: after the
/// 128-byte preamble, `DICM` and the File Meta Information group, whose length its first
/// element, (0002,0000) UL, gives (PS3.10 7.1).
pub fn dataset_of(path: &Path) -> io::Result<(File, u64)> {
    let mut file = File::open(path)?;
    let total = file.metadata()?.len();
    let mut head = [0u8; 144];
    file.read_exact(&mut head)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("not a Part 10 file: {what}"));
    if &head[128..132] != b"DICM" {
        return Err(bad("no DICM prefix"));
    }
    if head[132..136] != [0x02, 0x00, 0x00, 0x00] || &head[136..138] != b"UL" || head[138..140] != [4, 0] {
        return Err(bad("the file meta does not start with its group length"));
    }
    let group = u32::from_le_bytes(head[140..144].try_into().expect("4 bytes")) as u64;
    let start = 144 + group;
    if start > total {
        return Err(bad("the file meta is longer than the file"));
    }
    file.seek(SeekFrom::Start(start))?;
    Ok((file, total - start))
}

#[cfg(test)]
#[path = "scu_tests.rs"]
mod tests;
