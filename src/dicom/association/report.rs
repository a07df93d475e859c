//! A Storage Commitment report on an association (N-EVENT-REPORT-RQ, PS3.4 J.3.3): an archive
//! the forwarding asked to commit instances says which it holds. The data set is collected (at
//! most [`commitment::MAX_REPORT_BYTES`]), read, matched with the request it answers
//! ([`crate::projections::forward::pending_commitment`]) and recorded as one
//! `InstancesCommitted`; only then is the report answered with Success. A report for a
//! transaction we are not waiting for, from another AE title than the destination's, or that
//! cannot be read is answered with a failure status and recorded nowhere.

use dicom_ul::pdu::{AbortRQServiceProviderReason, PDataValue};

use super::{Association, End, abort};
use crate::dicom::commitment::{self, EVENT_ALL_COMMITTED, EVENT_SOME_FAILED, Report};
use crate::dicom::dimse::status;
use crate::events::{CommittedInstance, Event, InstancesCommitted, NewEvent};
use crate::log::Aggregate;
use crate::net::Stream;

/// N-EVENT-REPORT-RSP failure statuses (PS3.7 10.1.1.1.8).
const NO_SUCH_EVENT_TYPE: u16 = 0x0113;
const INVALID_ARGUMENT_VALUE: u16 = 0x0115;
const PROCESSING_FAILURE: u16 = 0x0110;

/// A report whose data set is being received.
#[derive(Debug)]
pub(super) struct PendingReport {
    message_id: u16,
    context_id: u8,
    event_type_id: u16,
    transfer_syntax: String,
    data: Vec<u8>,
}

impl<S: Stream> Association<S> {
    /// An N-EVENT-REPORT-RQ: its data set follows.
    pub(super) fn on_event_report(&mut self, message_id: u16, event_type_id: u16, context_id: u8, ts: &str) {
        self.report = Some(PendingReport {
            message_id,
            context_id,
            event_type_id,
            transfer_syntax: ts.to_owned(),
            data: Vec::new(),
        });
    }

    /// One fragment of the report; recorded and answered once it is complete.
    pub(super) async fn report_data(&mut self, pdv: PDataValue) -> Result<(), End> {
        let Some(report) = self.report.as_mut() else { return Ok(()) };
        if report.context_id != pdv.presentation_context_id {
            return Err(End::Protocol("report data on another presentation context".into()));
        }
        if report.data.len() + pdv.data.len() > commitment::MAX_REPORT_BYTES {
            let _ = self.wire.write(&abort(AbortRQServiceProviderReason::InvalidPduParameter)).await;
            return Err(End::Protocol("Storage Commitment report too large".into()));
        }
        report.data.extend_from_slice(&pdv.data);
        if !pdv.is_last {
            return Ok(());
        }
        let report = self.report.take().expect("checked above");
        let status = self.record_report(&report).await;
        let answer = commitment::event_report_response(report.message_id, report.event_type_id, status);
        self.respond(report.context_id, answer).await
    }

    /// Records the report as an `InstancesCommitted`; the status to answer it with.
    async fn record_report(&self, pending: &PendingReport) -> u16 {
        let calling_ae = self.negotiated.calling_ae.as_str();
        if ![EVENT_ALL_COMMITTED, EVENT_SOME_FAILED].contains(&pending.event_type_id) {
            tracing::warn!(
                calling_ae,
                event_type = pending.event_type_id,
                "Storage Commitment report of an unknown event type refused"
            );
            return NO_SUCH_EVENT_TYPE;
        }
        let report = match commitment::parse_report(&pending.data, &pending.transfer_syntax) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(calling_ae, error = %e, "unreadable Storage Commitment report refused");
                return INVALID_ARGUMENT_VALUE;
            }
        };
        let reader = self.ctx.reader.clone();
        let uid = report.transaction_uid.clone();
        let request =
            tokio::task::spawn_blocking(move || crate::projections::forward::pending_commitment(&reader, &uid)).await;
        let request = match request {
            Ok(Ok(Some(request))) => request,
            Ok(Ok(None)) => {
                tracing::warn!(calling_ae, transaction = %report.transaction_uid, "Storage Commitment report for a transaction not awaited (unknown, or answered before) refused");
                return INVALID_ARGUMENT_VALUE;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the pending Storage Commitment requests");
                return PROCESSING_FAILURE;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the pending Storage Commitment requests");
                return PROCESSING_FAILURE;
            }
        };
        let archives = &self.ctx.config.commitment_archives;
        if !archives.iter().any(|(name, ae)| *name == request.destination && ae == calling_ae) {
            tracing::warn!(calling_ae, destination = %request.destination, transaction = %report.transaction_uid, "Storage Commitment report from another AE title than the destination's refused");
            return PROCESSING_FAILURE;
        }
        let event = committed_event(&request, report);
        let aggregate = Aggregate { kind: "study".into(), id: event.study_instance_uid.clone() };
        let (committed, failed) = (event.committed.len(), event.failed.len());
        match self.ctx.log.append(vec![NewEvent::now(aggregate, Event::InstancesCommitted(Box::new(event)))]).await {
            Ok(_) => {
                tracing::info!(destination = %request.destination, committed, failed, "Storage Commitment report recorded");
                status::SUCCESS
            }
            Err(e) => {
                tracing::warn!(error = %e, "Storage Commitment report not recorded; the archive may send it again");
                PROCESSING_FAILURE
            }
        }
    }
}

/// The `InstancesCommitted` for `report`, which answers `request`: each reference mapped to the
/// instance version the request named (references it did not name are left out, logged).
fn committed_event(request: &crate::projections::forward::PendingCommitment, report: Report) -> InstancesCommitted {
    let seq_of = |uid: &str| request.instances.iter().find(|(sop, _)| sop == uid).map(|(_, seq)| *seq);
    let mut committed = Vec::new();
    for r in &report.committed {
        match seq_of(&r.sop_instance_uid) {
            Some(instance_seq) => committed.push(CommittedInstance {
                sop_instance_uid: r.sop_instance_uid.clone(),
                instance_seq,
                failure_reason: None,
            }),
            None => {
                tracing::warn!(sop_instance = %r.sop_instance_uid, "a Storage Commitment report names an instance its request did not; ignored")
            }
        }
    }
    let mut failed = Vec::new();
    for (r, reason) in &report.failed {
        if let Some(instance_seq) = seq_of(&r.sop_instance_uid) {
            failed.push(CommittedInstance {
                sop_instance_uid: r.sop_instance_uid.clone(),
                instance_seq,
                failure_reason: *reason,
            });
        }
    }
    InstancesCommitted {
        destination: request.destination.clone(),
        transaction_uid: report.transaction_uid,
        study_instance_uid: request.study_instance_uid.clone(),
        committed,
        failed,
    }
}
