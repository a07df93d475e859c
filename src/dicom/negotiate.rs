//! Association negotiation: who may associate, and which presentation contexts we accept.
//! Pure functions over the A-ASSOCIATE-RQ; no I/O.
//!
//! **Who.** The called AE title must be ours unless `accept_any_called_ae`; the calling AE
//! title must be on `calling_ae_allow` (optionally from the listed addresses, optionally with
//! the listed client certificate) unless that list is empty. An AE title that some entry binds
//! to a certificate is accepted only with a certificate an entry of it names: presented by
//! another certificate, or over a plain connection, it is refused as [`SPOOFED_CALLING_AE`]
//! (reason 3 on the wire, a security alert in the log). Refusals are A-ASSOCIATE-RJ, permanent, source "service user", with the
//! reason the standard has for them (PS3.8 9.3.4: 3 calling AE title not recognized, 7
//! called AE title not recognized, 2 application context name not supported) or source
//! "service provider (ACSE)" reason 2 for an unknown protocol version.
//!
//! **What.** A presentation context is accepted for the Verification SOP class, for
//! every Storage SOP class of the standard (PS3.4 Annex B, decided by UID in
//! [`super::sop_class`]) and, with `worklist` on, for the Modality Worklist Information Model
//! – FIND, and with a forwarding destination that confirms by Storage Commitment, for the
//! Storage Commitment Push Model, whose reports the archive sends us (both in implicit or
//! explicit VR little endian, the proposer's first; a proposed SCU/SCP role selection for
//! Storage Commitment is accepted as proposed, PS3.4 J.3.3); SOP classes the standard dictionary does not know only with
//! `accept_unknown_sop_classes`. Every refused context is returned with why
//! ([`ContextRefusal`]), for the association's log and metrics.
//!
//! **Transfer syntax.** We store exactly what we receive, so any transfer syntax we can
//! read the identifiers of is fine: implicit/explicit VR little endian, explicit VR big
//! endian, deflated, and the encapsulated ones (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, JPEG
//! XL, MPEG-2/MPEG-4/HEVC, encapsulated uncompressed). When a context proposes several, we
//! take the **proposer's order** (senders list the syntax they hold the data in first),
//! except that a lossy syntax is taken only when no lossless one is proposed: choosing it
//! over an uncompressed alternative could make the sender compress images it holds
//! uncompressed.

use std::net::IpAddr;

use dicom_ul::pdu::{
    AssociationAC, AssociationRJ, AssociationRJResult, AssociationRJServiceProviderASCEReason,
    AssociationRJServiceUserReason, AssociationRJSource, AssociationRQ, PresentationContextProposed,
    PresentationContextResult, PresentationContextResultReason, UserVariableItem,
};

use super::sop_class::{self, SopClassKind};
use super::worklist::{MWL_FIND, identifier};
use crate::config::{CallingAe, DicomConfig};
use crate::security::PeerIdentity;

/// The refusal label of a calling AE title bound to another certificate than the one
/// presented (or to one, over a plain connection).
pub const SPOOFED_CALLING_AE: &str = "calling_ae_certificate";

/// The DICOM application context (PS3.7 A.2.1).
const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
pub use super::sop_class::VERIFICATION;
/// Implicit VR little endian: the default transfer syntax every peer must support.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Our implementation class UID (UUID-derived, under 2.25) and version name.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.81326734981217040587591939622658461743";
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("ZENEDGE_", env!("CARGO_PKG_VERSION"));

/// Transfer syntaxes we accept, with whether they are lossy.
const TRANSFER_SYNTAXES: &[(&str, bool)] = &[
    ("1.2.840.10008.1.2", false),        // implicit VR little endian
    ("1.2.840.10008.1.2.1", false),      // explicit VR little endian
    ("1.2.840.10008.1.2.2", false),      // explicit VR big endian (retired, still sent)
    ("1.2.840.10008.1.2.1.99", false),   // deflated explicit VR little endian
    ("1.2.840.10008.1.2.1.98", false),   // encapsulated uncompressed explicit VR LE
    ("1.2.840.10008.1.2.5", false),      // RLE lossless
    ("1.2.840.10008.1.2.4.50", true),    // JPEG baseline (process 1)
    ("1.2.840.10008.1.2.4.51", true),    // JPEG extended (process 2 & 4)
    ("1.2.840.10008.1.2.4.57", false),   // JPEG lossless (process 14)
    ("1.2.840.10008.1.2.4.70", false),   // JPEG lossless SV1
    ("1.2.840.10008.1.2.4.80", false),   // JPEG-LS lossless
    ("1.2.840.10008.1.2.4.81", true),    // JPEG-LS near-lossless
    ("1.2.840.10008.1.2.4.90", false),   // JPEG 2000 lossless
    ("1.2.840.10008.1.2.4.91", true),    // JPEG 2000
    ("1.2.840.10008.1.2.4.201", false),  // HTJ2K lossless
    ("1.2.840.10008.1.2.4.202", false),  // HTJ2K lossless RPCL
    ("1.2.840.10008.1.2.4.203", true),   // HTJ2K
    ("1.2.840.10008.1.2.4.110", false),  // JPEG XL lossless
    ("1.2.840.10008.1.2.4.111", false),  // JPEG XL JPEG recompression
    ("1.2.840.10008.1.2.4.112", true),   // JPEG XL
    ("1.2.840.10008.1.2.4.100", true),   // MPEG2 main profile
    ("1.2.840.10008.1.2.4.100.1", true), // MPEG2 main profile, fragmentable
    ("1.2.840.10008.1.2.4.101", true),   // MPEG2 high profile
    ("1.2.840.10008.1.2.4.101.1", true), // MPEG2 high profile, fragmentable
    ("1.2.840.10008.1.2.4.102", true),   // MPEG-4 AVC/H.264 high profile
    ("1.2.840.10008.1.2.4.102.1", true), // … fragmentable
    ("1.2.840.10008.1.2.4.103", true),   // MPEG-4 AVC/H.264 BD-compatible
    ("1.2.840.10008.1.2.4.103.1", true), // … fragmentable
    ("1.2.840.10008.1.2.4.104", true),   // MPEG-4 AVC/H.264 for 2D video
    ("1.2.840.10008.1.2.4.104.1", true), // … fragmentable
    ("1.2.840.10008.1.2.4.105", true),   // MPEG-4 AVC/H.264 for 3D video
    ("1.2.840.10008.1.2.4.105.1", true), // … fragmentable
    ("1.2.840.10008.1.2.4.106", true),   // MPEG-4 AVC/H.264 stereo
    ("1.2.840.10008.1.2.4.106.1", true), // … fragmentable
    ("1.2.840.10008.1.2.4.107", true),   // HEVC/H.265 main profile
    ("1.2.840.10008.1.2.4.108", true),   // HEVC/H.265 main 10 profile
];

/// An accepted association, as the association handler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub calling_ae: String,
    pub called_ae: String,
    /// Largest PDU the peer accepts from us (0 in the RQ means unlimited).
    pub peer_max_pdu: u32,
    /// Accepted contexts: id, abstract syntax, transfer syntax.
    pub contexts: Vec<AcceptedContext>,
    /// Refused contexts, with why.
    pub refused: Vec<RefusedContext>,
}

/// A presentation context answered with a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedContext {
    pub id: u8,
    /// As proposed (trimmed of padding): it comes from the wire, so it may be anything.
    pub abstract_syntax: String,
    pub reason: ContextRefusal,
}

/// Why a presentation context was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextRefusal {
    /// A standard SOP class of another service (query/retrieve, worklist, print…).
    NotStorage,
    /// Non-Patient Object Storage: no patient, study or series to file it under.
    NonPatientObject,
    /// Not a standard SOP class (and `accept_unknown_sop_classes` is off).
    UnknownSopClass,
    /// An acceptable SOP class, but none of the proposed transfer syntaxes is supported.
    NoTransferSyntax,
}

impl ContextRefusal {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ContextRefusal::NotStorage => "not_storage",
            ContextRefusal::NonPatientObject => "non_patient_object",
            ContextRefusal::UnknownSopClass => "unknown_sop_class",
            ContextRefusal::NoTransferSyntax => "no_transfer_syntax",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedContext {
    pub id: u8,
    pub abstract_syntax: String,
    pub transfer_syntax: String,
}

/// A refused association: the RJ to send and a label for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rj: AssociationRJ,
    pub reason: &'static str,
}

/// Decides an A-ASSOCIATE-RQ from `peer`, whose client certificate (over TLS) is `identity`.
pub fn negotiate(
    rq: &AssociationRQ,
    peer: IpAddr,
    identity: Option<&PeerIdentity>,
    config: &DicomConfig,
) -> Result<(AssociationAC, Negotiated), Refusal> {
    let calling = rq.calling_ae_title.trim().to_owned();
    let called = rq.called_ae_title.trim().to_owned();
    if rq.protocol_version & 1 == 0 {
        let source = AssociationRJSource::ServiceProviderASCE(
            AssociationRJServiceProviderASCEReason::ProtocolVersionNotSupported,
        );
        return Err(refuse(source, "protocol_version"));
    }
    if rq.application_context_name.trim_end_matches('\0').trim() != APPLICATION_CONTEXT {
        let reason = AssociationRJServiceUserReason::ApplicationContextNameNotSupported;
        return Err(refuse(AssociationRJSource::ServiceUser(reason), "application_context"));
    }
    if !config.accept_any_called_ae && called != config.ae_title {
        let reason = AssociationRJServiceUserReason::CalledAETitleNotRecognized;
        return Err(refuse(AssociationRJSource::ServiceUser(reason), "called_ae"));
    }
    if let Some(label) = calling_ae_refusal(&config.calling_ae_allow, &calling, peer, identity) {
        let reason = AssociationRJServiceUserReason::CallingAETitleNotRecognized;
        return Err(refuse(AssociationRJSource::ServiceUser(reason), label));
    }
    let peer_max_pdu = rq
        .user_variables
        .iter()
        .find_map(|v| match v {
            UserVariableItem::MaxLength(0) => Some(u32::MAX),
            UserVariableItem::MaxLength(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(16_384);
    let mut results = Vec::with_capacity(rq.presentation_contexts.len());
    let (mut contexts, mut refused) = (Vec::new(), Vec::new());
    for pc in &rq.presentation_contexts {
        let abstract_syntax = trim_uid(&pc.abstract_syntax);
        let (reason, transfer_syntax) = match decide(pc, abstract_syntax, config) {
            Ok(ts) => {
                contexts.push(AcceptedContext {
                    id: pc.id,
                    abstract_syntax: abstract_syntax.to_owned(),
                    transfer_syntax: ts.to_owned(),
                });
                (PresentationContextResultReason::Acceptance, ts.to_owned())
            }
            Err(why) => {
                refused.push(RefusedContext { id: pc.id, abstract_syntax: abstract_syntax.to_owned(), reason: why });
                let reason = match why {
                    ContextRefusal::NoTransferSyntax => PresentationContextResultReason::TransferSyntaxesNotSupported,
                    _ => PresentationContextResultReason::AbstractSyntaxNotSupported,
                };
                (reason, IMPLICIT_VR_LE.to_owned())
            }
        };
        results.push(PresentationContextResult { id: pc.id, reason, transfer_syntax });
    }
    let mut ac = AssociationAC {
        protocol_version: 1,
        calling_ae_title: rq.calling_ae_title.clone(),
        called_ae_title: rq.called_ae_title.clone(),
        application_context_name: APPLICATION_CONTEXT.to_owned(),
        presentation_contexts: results,
        user_variables: vec![
            UserVariableItem::MaxLength(config.max_pdu_length),
            UserVariableItem::ImplementationClassUID(IMPLEMENTATION_CLASS_UID.to_owned()),
            UserVariableItem::ImplementationVersionName(IMPLEMENTATION_VERSION_NAME.to_owned()),
        ],
    };
    // The archive reporting a commitment proposes to act as the SCP of the Storage Commitment
    // class on this association (it sends the N-EVENT-REPORT): agreed as proposed.
    let commitment_accepted = contexts.iter().any(|c| c.abstract_syntax == super::commitment::STORAGE_COMMITMENT);
    for item in &rq.user_variables {
        if let UserVariableItem::ScuScpRoleSelectionSubItem(uid, roles) = item
            && commitment_accepted
            && trim_uid(uid) == super::commitment::STORAGE_COMMITMENT
        {
            ac.user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(uid.clone(), *roles));
        }
    }
    Ok((ac, Negotiated { calling_ae: calling, called_ae: called, peer_max_pdu, contexts, refused }))
}

/// Why `calling` from `peer` with `identity` may not associate (`None`: it may).
fn calling_ae_refusal(
    allow: &[CallingAe],
    calling: &str,
    peer: IpAddr,
    identity: Option<&PeerIdentity>,
) -> Option<&'static str> {
    let peer = peer.to_canonical();
    let certificate_ok =
        |e: &CallingAe| e.certificate.as_ref().is_none_or(|m| identity.is_some_and(|id| id.matches(m)));
    if allow.is_empty() || allow.iter().any(|e| e.matches(calling, peer) && certificate_ok(e)) {
        return None;
    }
    let bound = allow.iter().any(|e| e.ae_title == calling && e.certificate.is_some());
    Some(if bound { SPOOFED_CALLING_AE } else { "calling_ae" })
}

/// The transfer syntax taken for presentation context `pc`, or why it is refused.
fn decide<'a>(
    pc: &'a PresentationContextProposed,
    abstract_syntax: &str,
    config: &DicomConfig,
) -> Result<&'a str, ContextRefusal> {
    let commitment = !config.commitment_archives.is_empty() && abstract_syntax == super::commitment::STORAGE_COMMITMENT;
    if commitment || (config.worklist && abstract_syntax == MWL_FIND) {
        // The identifier is read and answered in the proposer's first little endian syntax.
        let mut proposed = pc.transfer_syntaxes.iter().map(|t| trim_uid(t));
        return proposed.find(|t| identifier::TRANSFER_SYNTAXES.contains(t)).ok_or(ContextRefusal::NoTransferSyntax);
    }
    if let Some(why) = sop_class_refusal(abstract_syntax, config.accept_unknown_sop_classes) {
        return Err(why);
    }
    choose_transfer_syntax(pc.transfer_syntaxes.iter().map(|t| trim_uid(t))).ok_or(ContextRefusal::NoTransferSyntax)
}

fn refuse(source: AssociationRJSource, reason: &'static str) -> Refusal {
    Refusal { rj: AssociationRJ { result: AssociationRJResult::Permanent, source }, reason }
}

/// UIDs in PDUs may be padded with a NUL (or, from sloppy peers, a space).
fn trim_uid(uid: &str) -> &str {
    uid.trim_end_matches(['\0', ' '])
}

/// Why a context for SOP class `uid` is refused, `None` when it is acceptable: Verification,
/// a standard Storage SOP class, or (if configured) any other well-formed UID the standard
/// dictionary does not know.
pub fn sop_class_refusal(uid: &str, accept_unknown: bool) -> Option<ContextRefusal> {
    match sop_class::classify(uid) {
        SopClassKind::Verification | SopClassKind::Storage => None,
        SopClassKind::NonPatientObject => Some(ContextRefusal::NonPatientObject),
        SopClassKind::OtherService => Some(ContextRefusal::NotStorage),
        SopClassKind::Unknown if accept_unknown && crate::ids::is_valid_uid(uid) => None,
        SopClassKind::Unknown => Some(ContextRefusal::UnknownSopClass),
    }
}

/// The proposer's first lossless syntax we support, else its first lossy one.
pub fn choose_transfer_syntax<'a>(proposed: impl Iterator<Item = &'a str> + Clone) -> Option<&'a str> {
    let supported = |uid: &str| TRANSFER_SYNTAXES.iter().find(|(t, _)| *t == uid).map(|(_, lossy)| *lossy);
    let mut lossless = proposed.clone().filter(|t| supported(t) == Some(false));
    let mut lossy = proposed.filter(|t| supported(t) == Some(true));
    lossless.next().or_else(|| lossy.next())
}

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;
