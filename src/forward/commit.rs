//! Asking a destination to commit what it stored (Storage Commitment Push Model, PS3.4 J):
//! with `confirm = "commitment"`, each study group's stored instances get a transaction UID
//! in the round's `InstanceForwarded` events, which makes the request durable (the
//! `forward_commitments` projection) before it is sent. Then one association sends an
//! N-ACTION-RQ per pending transaction not yet asked in this run, or asked longer than
//! `commitment_timeout` ago without a report; the archive's N-EVENT-REPORT comes to our SCP
//! (`src/dicom/association/report.rs`), which records `InstancesCommitted`. A failed
//! request is asked again after `commitment_timeout`; a crash loses nothing (the pending
//! transactions are asked again at start).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};

use super::scu::Transient;
use crate::config::Destination;
use crate::dicom::commitment::{self, Reference, STORAGE_COMMITMENT};

/// When each pending transaction was last asked for, in this run.
#[derive(Debug, Default)]
pub(super) struct Asked {
    at: HashMap<String, Instant>,
}

impl Asked {
    /// The transactions of `pending` to ask for now: never asked in this run, or asked more
    /// than `timeout` ago. Forgets the ones no longer pending.
    pub(super) fn due(&mut self, pending: &[String], now: Instant, timeout: Duration) -> Vec<String> {
        self.at.retain(|uid, _| pending.contains(uid));
        pending
            .iter()
            .filter(|uid| self.at.get(*uid).is_none_or(|at| now.duration_since(*at) >= timeout))
            .cloned()
            .collect()
    }

    /// Whether `uid` was asked before in this run (asking again means its report is overdue).
    pub(super) fn was_asked(&self, uid: &str) -> bool {
        self.at.contains_key(uid)
    }

    pub(super) fn asked(&mut self, uid: &str, at: Instant) {
        self.at.insert(uid.to_owned(), at);
    }
}

/// Sends one N-ACTION-RQ per `(transaction UID, instances)` over one association; per
/// transaction, whether the archive accepted the request (N-ACTION-RSP Success).
pub fn request(
    destination: &Destination,
    transactions: &[(String, Vec<Reference>)],
) -> Result<Vec<Result<(), String>>, Transient> {
    let address = format!("{}:{}", destination.host, destination.port);
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(destination.calling_ae.as_str())
        .called_ae_title(destination.called_ae.as_str())
        .max_pdu_length(destination.max_pdu)
        .connection_timeout(destination.timeout)
        .read_timeout(destination.timeout)
        .write_timeout(destination.timeout)
        .with_presentation_context(STORAGE_COMMITMENT, vec![crate::dicom::negotiate::IMPLICIT_VR_LE])
        .establish_with(&address)
        .map_err(|e| Transient(format!("association for Storage Commitment: {e}")))?;
    super::scu::no_delay(&mut assoc);
    let context = assoc
        .presentation_contexts()
        .iter()
        .find(|pc| pc.reason == PresentationContextResultReason::Acceptance && pc.abstract_syntax == STORAGE_COMMITMENT)
        .map(|pc| pc.id);
    let Some(context) = context else {
        let _ = assoc.release();
        return Err(Transient("the archive does not accept Storage Commitment (set confirm = \"store\"?)".into()));
    };
    let peer_max = match assoc.acceptor_max_pdu_length() {
        0 => u32::MAX,
        n => n,
    };
    let mut answers = Vec::with_capacity(transactions.len());
    for (n, (uid, references)) in transactions.iter().enumerate() {
        let message_id = (n % 0xFFFF) as u16 + 1;
        answers.push(action(&mut assoc, context, message_id, peer_max, uid, references)?);
    }
    let _ = assoc.release();
    Ok(answers)
}

/// One N-ACTION-RQ with its data set, and the archive's answer.
fn action(
    assoc: &mut ClientAssociation<std::net::TcpStream>,
    context: u8,
    message_id: u16,
    peer_max: u32,
    transaction_uid: &str,
    references: &[Reference],
) -> Result<Result<(), String>, Transient> {
    let send = |assoc: &mut ClientAssociation<_>, value_type, is_last, data| {
        let pdv = PDataValue { presentation_context_id: context, value_type, is_last, data };
        assoc.send(&Pdu::PData { data: vec![pdv] }).map_err(|e| Transient(format!("sending an N-ACTION: {e}")))
    };
    send(assoc, PDataValueType::Command, true, commitment::action_request(message_id))?;
    let data = commitment::action_data_set(transaction_uid, references);
    let chunks: Vec<&[u8]> = data.chunks(super::scu::fragment_len(peer_max)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        send(assoc, PDataValueType::Data, i + 1 == chunks.len(), chunk.to_vec())?;
    }
    let command = super::scu::command_set(assoc, "an N-ACTION-RSP")?;
    let answer = commitment::parse_action_response(&command).map_err(|e| Transient(e.to_string()))?;
    if answer.message_id_being_responded_to != message_id {
        return Err(Transient(format!(
            "the archive answered message {} to message {message_id}",
            answer.message_id_being_responded_to
        )));
    }
    Ok(match answer.status {
        0x0000 => Ok(()),
        status => Err(format!("N-ACTION status 0x{status:04X}")),
    })
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
