//! One association: negotiate, then C-ECHO and C-STORE until release, abort or shutdown.
//!
//! The upper-layer state machine of an acceptor (PS3.8 9.2) reduced to what an SCP needs:
//! A-ASSOCIATE-RQ answered with AC or RJ; P-DATA-TF carrying commands and data sets; A-RELEASE-RQ
//! answered with RP; A-ABORT in either direction. Command fragments are collected up to
//! [`MAX_COMMAND_BYTES`]; data fragments stream to a spool file in chunks of at most
//! [`FLUSH_BYTES`], so an instance of any size needs that much memory, not its size.
//!
//! `Success` is sent only after the file is durable and moved into place and the
//! `InstanceStored` event is committed (invariant 1): the domain builds the event from what
//! the spool scanned and stored ([`crate::domain::instance_event`]) and the flusher
//! ([`super::flush`]) makes it durable together with the instances of other associations
//! completed at about the same time (one `syncfs`, one commit), answering after the commit.
//! Everything that fails before that is answered with a failure status and an Error Comment,
//! and nothing of it is referenced by the log.
//!
//! An instance file that cannot be written, fsync'ed or moved into place (`ENOSPC`, `EIO`,
//! `EROFS`) fails that C-STORE with `0xA700`, which senders retry later, and its spool file is
//! removed at once; the daemon goes on. The error belongs to that file (the kernel reports a
//! writeback error to the file it happened on, and the file is discarded, never fsync'ed
//! again), the log is untouched, and stopping would cut every other association and HL7
//! connection. If the disk itself is failing, the next commit of the log fails and stops the
//! daemon anyway. A failed `syncfs` belongs to no one file: the flusher fails its whole batch
//! with `0xA700` and stops the daemon (see [`super::flush`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource, PDataValue, PDataValueType, Pdu};

use super::DicomContext;
use super::dimse::{self, MAX_COMMAND_BYTES, Request, status};
use super::flush::Unrecorded;
use super::negotiate::{self, Negotiated};
use super::spool::{MetaFields, Spool, StoreError, Stored};
use super::wire::{Wire, WireError};
use crate::activity::Listener;
use crate::domain::{self, Arrival, InstanceOutcome, StoredFile};
use crate::events::NewEvent;
use crate::log::AppendError;
use crate::net::Stream;
use crate::security::{AlertKind, Facts, PeerIdentity};

mod find;
mod report;
mod store;

/// Largest A-ASSOCIATE-RQ accepted: a sender proposing every storage class with a dozen
/// transfer syntaxes each stays well below.
const MAX_ASSOCIATE_RQ: u32 = 1 << 20;
/// Data set bytes held in memory before they are written to the spool file.
const FLUSH_BYTES: usize = 1 << 20;

/// Why the association ended other than by release.
#[derive(Debug, thiserror::Error)]
enum End {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("aborted by the peer")]
    PeerAbort,
    #[error("shutting down")]
    Shutdown,
}

/// A C-STORE being received.
struct Incoming {
    message_id: u16,
    context_id: u8,
    meta: MetaFields,
    /// Data not yet written to the spool.
    pending: Vec<u8>,
    spool: Option<Spool>,
    /// Decided before the data arrived (e.g. disk reserve): the data is read and dropped.
    refusal: Option<(u16, String)>,
    started: Instant,
}

/// Runs one association to its end; `identity` is the client certificate of a TLS connection.
pub async fn run<S: Stream>(stream: S, peer: SocketAddr, identity: Option<PeerIdentity>, ctx: Arc<DicomContext>) {
    let config = &ctx.config;
    let mut wire = Wire::new(stream, config.read_timeout, config.pdu_timeout, config.write_timeout);
    let negotiated = match accept(&mut wire, peer, identity.as_ref(), &ctx).await {
        Some(n) => n,
        None => {
            wire.close().await;
            return;
        }
    };
    ctx.metrics.dicom_association("accepted");
    tracing::info!(
        peer = %peer,
        calling_ae = %negotiated.calling_ae,
        contexts = negotiated.contexts.len(),
        refused = negotiated.refused.len(),
        "DICOM association accepted"
    );
    super::refusals::report(&negotiated, peer, &ctx);
    let (ctx, audited) = (ctx.clone(), HashSet::new());
    let mut assoc = Association {
        wire,
        peer,
        identity,
        ctx,
        negotiated,
        command: Vec::new(),
        incoming: None,
        audited,
        find: None,
        report: None,
    };
    match assoc.serve().await {
        Ok(()) => tracing::debug!(peer = %peer, "DICOM association released"),
        Err(End::Shutdown) => tracing::info!(peer = %peer, "DICOM association aborted for shutdown"),
        Err(e) => {
            tracing::warn!(peer = %peer, calling_ae = %assoc.negotiated.calling_ae, reason = %e, "DICOM association ended")
        }
    }
    if let Some(incoming) = assoc.incoming.take() {
        store::discard(incoming).await;
    }
    assoc.wire.close().await;
}

/// Reads the A-ASSOCIATE-RQ and answers it; `None` when refused or broken.
async fn accept<S: Stream>(
    wire: &mut Wire<S>,
    peer: SocketAddr,
    identity: Option<&PeerIdentity>,
    ctx: &DicomContext,
) -> Option<Negotiated> {
    let rq = match wire.read(MAX_ASSOCIATE_RQ).await {
        Ok(Pdu::AssociationRQ(rq)) => rq,
        Ok(other) => {
            tracing::warn!(peer = %peer, pdu = %other.short_description(), "DICOM connection did not start with A-ASSOCIATE-RQ");
            let _ = wire.write(&abort(AbortRQServiceProviderReason::UnexpectedPdu)).await;
            ctx.metrics.dicom_association("protocol");
            return None;
        }
        Err(e @ WireError::Tls) => {
            tracing::warn!(peer = %peer, error = %e, "DICOM connection closed");
            ctx.metrics.dicom_association("tls_on_plain_port");
            return None;
        }
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "DICOM connection closed before association");
            ctx.metrics.dicom_association("protocol");
            return None;
        }
    };
    match negotiate::negotiate(&rq, peer.ip(), identity, &ctx.config) {
        Ok((ac, negotiated)) => wire.write(&Pdu::AssociationAC(ac)).await.ok().map(|()| negotiated),
        Err(refusal) => {
            let calling_ae = rq.calling_ae_title.trim();
            if refusal.reason == negotiate::SPOOFED_CALLING_AE {
                let listener = if identity.is_some() { "dicom_tls" } else { "dicom" };
                let reason = "calling AE title bound to another certificate (dicom.calling_ae_allow): A-ASSOCIATE-RJ";
                let facts =
                    Facts::connection(listener, peer, reason).identity(identity).detail("calling_ae", calling_ae);
                ctx.alerts.alert_recorded(AlertKind::CallingAeSpoofed, facts).await;
            }
            tracing::warn!(
                peer = %peer,
                calling_ae = %calling_ae,
                called_ae = %rq.called_ae_title.trim(),
                reason = refusal.reason,
                "DICOM association rejected"
            );
            ctx.metrics.dicom_association(&format!("rejected_{}", refusal.reason));
            let listener = if identity.is_some() { Listener::DicomTls } else { Listener::Dicom };
            let why = format!("association from {calling_ae:?} rejected: {}", refusal.reason);
            ctx.metrics.activity.failed_at(listener, jiff::Timestamp::now(), &why);
            let _ = wire.write(&Pdu::AssociationRJ(refusal.rj)).await;
            None
        }
    }
}

fn abort(reason: AbortRQServiceProviderReason) -> Pdu {
    Pdu::AbortRQ { source: AbortRQSource::ServiceProvider(reason) }
}

struct Association<S> {
    wire: Wire<S>,
    peer: SocketAddr,
    /// The client certificate of a TLS connection (`peer_identity` of each instance's event).
    identity: Option<PeerIdentity>,
    ctx: Arc<DicomContext>,
    negotiated: Negotiated,
    /// Command fragments of the message being received.
    command: Vec<u8>,
    incoming: Option<Incoming>,
    /// Studies whose DICOM Instances Transferred record this association wrote.
    audited: HashSet<String>,
    /// A C-FIND whose identifier is being received ([`find`]).
    find: Option<super::worklist::Pending>,
    /// A Storage Commitment report whose data set is being received ([`report`]).
    report: Option<report::PendingReport>,
}

impl<S: Stream> Association<S> {
    async fn serve(&mut self) -> Result<(), End> {
        let ctx = self.ctx.clone();
        loop {
            let pdu = tokio::select! {
                biased;
                pdu = self.wire.read(self.ctx.config.max_pdu_length) => pdu,
                _ = ctx.shutdown.cancelled() => {
                    let _ = self.wire.write(&abort(AbortRQServiceProviderReason::ReasonNotSpecified)).await;
                    return Err(End::Shutdown);
                }
            };
            match pdu {
                Ok(Pdu::PData { data }) => {
                    for pdv in data {
                        self.on_pdv(pdv).await?;
                    }
                }
                Ok(Pdu::ReleaseRQ) => {
                    self.wire.write(&Pdu::ReleaseRP).await?;
                    return Ok(());
                }
                Ok(Pdu::AbortRQ { .. }) => return Err(End::PeerAbort),
                Ok(other) => {
                    let _ = self.wire.write(&abort(AbortRQServiceProviderReason::UnexpectedPdu)).await;
                    return Err(End::Protocol(format!("unexpected {}", other.short_description())));
                }
                Err(e) => {
                    // The peer learns why the association ended (its log says "aborted by the
                    // provider", not "connection reset"); a closed or broken socket gets nothing.
                    let reason = match e {
                        WireError::TooLarge { .. } | WireError::Malformed(_) | WireError::PduTimeout(_) => {
                            Some(AbortRQServiceProviderReason::InvalidPduParameter)
                        }
                        WireError::Tls => Some(AbortRQServiceProviderReason::UnrecognizedPdu),
                        WireError::Timeout(_) => Some(AbortRQServiceProviderReason::ReasonNotSpecified),
                        WireError::Closed | WireError::Io(_) => None,
                    };
                    if let Some(reason) = reason {
                        let _ = self.wire.write(&abort(reason)).await;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    async fn on_pdv(&mut self, pdv: PDataValue) -> Result<(), End> {
        let Some(context) = self.negotiated.contexts.iter().find(|c| c.id == pdv.presentation_context_id) else {
            let _ = self.wire.write(&abort(AbortRQServiceProviderReason::InvalidPduParameter)).await;
            return Err(End::Protocol(format!(
                "presentation context {} was not accepted",
                pdv.presentation_context_id
            )));
        };
        let context = context.clone();
        match pdv.value_type {
            PDataValueType::Command => {
                if self.incoming.is_some() || self.find.is_some() || self.report.is_some() {
                    return Err(End::Protocol("a command arrived before the data set was complete".into()));
                }
                if self.command.len() + pdv.data.len() > MAX_COMMAND_BYTES {
                    let _ = self.wire.write(&abort(AbortRQServiceProviderReason::InvalidPduParameter)).await;
                    return Err(End::Protocol("command set too large".into()));
                }
                self.command.extend_from_slice(&pdv.data);
                if pdv.is_last {
                    let command = std::mem::take(&mut self.command);
                    self.on_command(&command, context.id, &context.transfer_syntax).await?;
                }
            }
            PDataValueType::Data if self.find.is_some() => self.find_data(pdv).await?,
            PDataValueType::Data if self.report.is_some() => self.report_data(pdv).await?,
            PDataValueType::Data => {
                let Some(incoming) = self.incoming.as_mut() else {
                    return Err(End::Protocol("data set without a C-STORE request".into()));
                };
                if incoming.context_id != pdv.presentation_context_id {
                    return Err(End::Protocol("data set on another presentation context".into()));
                }
                self.ctx.metrics.dicom_bytes_received.inc_by(pdv.data.len() as u64);
                if incoming.refusal.is_none() {
                    incoming.pending.extend_from_slice(&pdv.data);
                    if incoming.pending.len() >= FLUSH_BYTES {
                        self.flush().await;
                    }
                }
                if pdv.is_last {
                    let incoming = self.incoming.take().expect("checked above");
                    self.complete_store(incoming).await?;
                }
            }
        }
        Ok(())
    }

    async fn on_command(&mut self, command: &[u8], context_id: u8, transfer_syntax: &str) -> Result<(), End> {
        match dimse::parse(command) {
            Ok(Request::Echo { message_id, sop_class_uid }) => {
                self.respond(context_id, dimse::echo_response(message_id, &sop_class_uid)).await
            }
            Ok(Request::Store { message_id, sop_class_uid, sop_instance_uid }) => {
                let refusal = self.refusal_before_data();
                let meta = MetaFields {
                    sop_class_uid,
                    sop_instance_uid,
                    transfer_syntax_uid: transfer_syntax.to_owned(),
                    source_ae: self.negotiated.calling_ae.clone(),
                };
                self.incoming = Some(Incoming {
                    message_id,
                    context_id,
                    meta,
                    pending: Vec::new(),
                    spool: None,
                    refusal,
                    started: Instant::now(),
                });
                Ok(())
            }
            Ok(Request::Find { message_id, sop_class_uid }) => {
                self.on_find(message_id, sop_class_uid, context_id, transfer_syntax);
                Ok(())
            }
            // A cancel of a C-FIND already answered (PS3.7 9.3.2.3: nothing to do).
            Ok(Request::Cancel { .. }) => Ok(()),
            Ok(Request::EventReport { message_id, sop_class_uid, event_type_id })
                if sop_class_uid == super::commitment::STORAGE_COMMITMENT =>
            {
                self.on_event_report(message_id, event_type_id, context_id, transfer_syntax);
                Ok(())
            }
            Ok(Request::EventReport { sop_class_uid, .. }) => {
                let _ = self.wire.write(&abort(AbortRQServiceProviderReason::UnrecognizedPduParameter)).await;
                Err(End::Protocol(format!("N-EVENT-REPORT of SOP class {sop_class_uid}, not Storage Commitment")))
            }
            Ok(Request::Other { command_field }) => {
                let _ = self.wire.write(&abort(AbortRQServiceProviderReason::UnrecognizedPduParameter)).await;
                Err(End::Protocol(format!("unsupported DIMSE command 0x{command_field:04X}")))
            }
            Err(e) => {
                let _ = self.wire.write(&abort(AbortRQServiceProviderReason::InvalidPduParameter)).await;
                Err(End::Protocol(e.to_string()))
            }
        }
    }

    /// Sends a command set (a response) on `context_id`.
    async fn respond(&mut self, context_id: u8, command: Vec<u8>) -> Result<(), End> {
        let pdv = PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: command,
        };
        self.wire.write(&Pdu::PData { data: vec![pdv] }).await?;
        Ok(())
    }
}
