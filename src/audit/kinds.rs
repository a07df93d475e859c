//! The records the daemon writes, one constructor per kind of event, with the codes of
//! DICOM PS3.15 A.5.3 and PS3.16 (`DCM`) they carry.

use jiff::Timestamp;

use super::record::{Action, AuditObject, AuditRecord, Code, Outcome, Participant};
use crate::events::{Hl7MessageReceived, InstanceStored};
use crate::security::{AlertKind, Facts, PeerIdentity};

/// PS3.16 codes used here.
mod dcm {
    pub const APPLICATION_ACTIVITY: (&str, &str) = ("110100", "Application Activity");
    pub const AUDIT_LOG_USED: (&str, &str) = ("110101", "Audit Log Used");
    pub const INSTANCES_ACCESSED: (&str, &str) = ("110103", "DICOM Instances Accessed");
    pub const INSTANCES_TRANSFERRED: (&str, &str) = ("110104", "DICOM Instances Transferred");
    pub const EXPORT: (&str, &str) = ("110106", "Export");
    pub const ORDER_RECORD: (&str, &str) = ("110109", "Order Record");
    pub const PATIENT_RECORD: (&str, &str) = ("110110", "Patient Record");
    pub const QUERY: (&str, &str) = ("110112", "Query");
    pub const SECURITY_ALERT: (&str, &str) = ("110113", "Security Alert");
    pub const USER_AUTHENTICATION: (&str, &str) = ("110114", "User Authentication");
    pub const APPLICATION_START: (&str, &str) = ("110120", "Application Start");
    pub const APPLICATION_STOP: (&str, &str) = ("110121", "Application Stop");
    pub const LOGIN: (&str, &str) = ("110122", "Login");
    pub const NODE_AUTHENTICATION: (&str, &str) = ("110126", "Node Authentication");
    pub const SECURITY_CONFIGURATION: (&str, &str) = ("110129", "Security Configuration");
    pub const APPLICATION: (&str, &str) = ("110150", "Application");
    pub const APPLICATION_LAUNCHER: (&str, &str) = ("110151", "Application Launcher");
    pub const DESTINATION: (&str, &str) = ("110152", "Destination Role ID");
    pub const SOURCE: (&str, &str) = ("110153", "Source Role ID");
    pub const STUDY_INSTANCE_UID: (&str, &str) = ("110180", "Study Instance UID");
}

fn code((code, display): (&str, &str)) -> Code {
    Code::dcm(code, display)
}

/// RFC 3881 `ParticipantObjectIDTypeCode` 2: Patient Number.
fn patient_number() -> Code {
    Code::rfc3881("2", "Patient Number")
}

/// RFC 3881 `ParticipantObjectIDTypeCode` 12: URI.
fn uri() -> Code {
    Code::rfc3881("12", "URI")
}

/// A patient (type 1 person, role 1 patient) by one of its ids.
pub fn patient(id: &str) -> AuditObject {
    AuditObject {
        type_code: 1,
        role: 1,
        id_type: patient_number(),
        id: id.to_owned(),
        name: None,
        description: None,
        details: Vec::new(),
    }
}

/// The daemon itself as a participant (`UserID` = the edge id).
pub fn this_edge(edge_id: &str, role: Option<Code>) -> Participant {
    Participant { user_id: edge_id.to_owned(), role, ..Participant::default() }
}

/// How a certificate is named in `UserName`: the name it gives and its fingerprint.
pub fn certificate_name(identity: &PeerIdentity) -> String {
    format!("{} sha256={}", identity.name(), identity.sha256_fingerprint)
}

/// The IP address of an `ip:port` text (as the events keep the peer), or the text itself.
fn address_of(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| peer.to_owned())
}

/// Application Activity: the daemon started (`started`) or stopped.
pub fn application_activity(edge_id: &str, started: bool, at: Timestamp) -> AuditRecord {
    let kind = if started { dcm::APPLICATION_START } else { dcm::APPLICATION_STOP };
    AuditRecord {
        event: code(dcm::APPLICATION_ACTIVITY),
        action: Action::Execute,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: vec![code(kind)],
        participants: vec![
            this_edge(edge_id, Some(code(dcm::APPLICATION))),
            Participant {
                user_id: "systemd".into(),
                requestor: true,
                role: Some(code(dcm::APPLICATION_LAUNCHER)),
                ..Participant::default()
            },
        ],
        objects: Vec::new(),
    }
}

/// Patient Record (ADT) or Order Record (anything else): an HL7 message received and stored
/// (or re-sent), with its sender, the connection's certificate and the patient's ids.
pub fn hl7_received(edge_id: &str, message: &Hl7MessageReceived, at: Timestamp) -> AuditRecord {
    let s = &message.summary;
    let event = if s.message_code.eq_ignore_ascii_case("ADT") { dcm::PATIENT_RECORD } else { dcm::ORDER_RECORD };
    let sender = Participant {
        user_id: message.sending_application.clone(),
        alternative_user_id: (!message.sending_facility.is_empty()).then(|| message.sending_facility.clone()),
        user_name: message.peer_identity.as_ref().map(certificate_name),
        requestor: true,
        network_access_point: Some(address_of(&message.peer)),
        role: Some(code(dcm::SOURCE)),
    };
    let mut objects: Vec<AuditObject> = Vec::new();
    if let Some(p) = &s.patient {
        for identifier in &p.identifiers {
            let id = match &identifier.assigning_authority {
                Some(authority) => format!("{}^^^{authority}", identifier.id),
                None => identifier.id.clone(),
            };
            if !objects.iter().any(|o| o.id == id) {
                objects.push(patient(&id));
            }
        }
        if objects.is_empty()
            && let Some(id) = &p.id
        {
            objects.push(patient(id));
        }
    }
    objects.push(AuditObject {
        type_code: 2,
        role: 3,
        id_type: Code { code: "MSH-10".into(), system: "HL7".into(), display: "Message Control ID".into() },
        id: message.control_id.clone(),
        name: None,
        description: Some(message.message_type.clone()),
        details: Vec::new(),
    });
    AuditRecord {
        event: code(event),
        action: Action::Create,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![sender, this_edge(edge_id, Some(code(dcm::DESTINATION)))],
        objects,
    }
}

/// DICOM Instances Transferred: the first instance of a study on an association (one record
/// per association and study), with the calling AE, the certificate and the patient.
pub fn instances_transferred(instance: &InstanceStored, at: Timestamp) -> AuditRecord {
    let source = Participant {
        user_id: instance.calling_ae.clone(),
        alternative_user_id: Some(format!("AETITLES={}", instance.calling_ae)),
        user_name: instance.peer_identity.as_ref().map(certificate_name),
        requestor: true,
        network_access_point: Some(address_of(&instance.peer)),
        role: Some(code(dcm::SOURCE)),
    };
    let destination = Participant {
        user_id: instance.called_ae.clone(),
        alternative_user_id: Some(format!("AETITLES={}", instance.called_ae)),
        role: Some(code(dcm::DESTINATION)),
        ..Participant::default()
    };
    let mut objects = vec![AuditObject {
        type_code: 2,
        role: 3,
        id_type: code(dcm::STUDY_INSTANCE_UID),
        id: instance.study_instance_uid.clone(),
        name: None,
        description: Some(format!("SOPClass={}", instance.sop_class_uid)),
        details: Vec::new(),
    }];
    if let Some(id) = instance.patient_id.as_deref().filter(|id| !id.is_empty()) {
        objects.push(patient(id));
    }
    AuditRecord {
        event: code(dcm::INSTANCES_TRANSFERRED),
        action: Action::Create,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![source, destination],
        objects,
    }
}

/// Query (PS3.15 A.5.3.12) by DICOM C-FIND: the calling AE and its address (with its
/// certificate over TLS), this edge as the called AE, the SOP class queried (object type 2,
/// role 3, id type 110181 SOP Class UID), and every patient in the answer.
pub fn dicom_query(
    called: (&str, &str),
    calling_ae: &str,
    peer: &str,
    identity: Option<&PeerIdentity>,
    sop_class_uid: &str,
    patients: &[String],
    at: Timestamp,
) -> AuditRecord {
    let (edge_id, called_ae) = called;
    let requestor = Participant {
        user_id: calling_ae.to_owned(),
        alternative_user_id: Some(format!("AETITLES={calling_ae}")),
        user_name: identity.map(certificate_name),
        requestor: true,
        network_access_point: Some(address_of(peer)),
        role: Some(code(dcm::SOURCE)),
    };
    let answering = Participant {
        user_id: edge_id.to_owned(),
        alternative_user_id: Some(format!("AETITLES={called_ae}")),
        role: Some(code(dcm::DESTINATION)),
        ..Participant::default()
    };
    let mut objects = vec![AuditObject {
        type_code: 2,
        role: 3,
        id_type: Code::dcm("110181", "SOP Class UID"),
        id: sop_class_uid.to_owned(),
        name: None,
        description: None,
        details: Vec::new(),
    }];
    objects.extend(patients.iter().map(|p| patient(p)));
    AuditRecord {
        event: code(dcm::QUERY),
        action: Action::Execute,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![requestor, answering],
        objects,
    }
}

/// A security alert: a refused TLS handshake is a failed User Authentication (Login); the
/// rest are Security Alerts (Node Authentication for a peer that is not who it says or not
/// allowed in, Security Configuration for a reload, failed or done, and a certificate about to
/// expire).
pub fn security_alert(edge_id: &str, kind: AlertKind, facts: &Facts, at: Timestamp) -> AuditRecord {
    let (event, event_type) = match kind {
        AlertKind::TlsHandshakeRefused => (dcm::USER_AUTHENTICATION, dcm::LOGIN),
        AlertKind::SourceAddressRefused | AlertKind::SenderNotAllowed | AlertKind::CallingAeSpoofed => {
            (dcm::SECURITY_ALERT, dcm::NODE_AUTHENTICATION)
        }
        AlertKind::ConfigurationReloadFailed | AlertKind::ConfigurationReloaded | AlertKind::CertificateExpiring => {
            (dcm::SECURITY_ALERT, dcm::SECURITY_CONFIGURATION)
        }
    };
    let mut participants = Vec::new();
    if facts.peer.is_some() || facts.identity.is_some() {
        let detail = |name: &str| facts.details.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        let user_id = detail("calling_ae")
            .or_else(|| detail("sending_application"))
            .or_else(|| facts.identity.as_ref().map(|i| i.name().to_owned()))
            .or_else(|| facts.peer.map(|p| p.to_string()))
            .unwrap_or_default();
        participants.push(Participant {
            user_id,
            alternative_user_id: None,
            user_name: facts.identity.as_ref().map(certificate_name),
            requestor: true,
            network_access_point: facts.peer.map(|p| p.ip().to_string()),
            role: None,
        });
    }
    participants.push(this_edge(edge_id, None));
    let object = AuditObject {
        type_code: 2,
        role: 13,
        id_type: uri(),
        id: facts.listener.unwrap_or("configuration").to_owned(),
        name: None,
        description: Some(kind.as_str().to_owned()),
        details: facts.details.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect(),
    };
    AuditRecord {
        event: code(event),
        action: Action::Execute,
        at,
        outcome: if kind.is_success() { Outcome::Success } else { Outcome::MinorFailure },
        outcome_description: Some(facts.reason.clone()),
        event_types: vec![code(event_type)],
        participants,
        objects: vec![object],
    }
}

/// Who made an API request, as its audit records name it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requester {
    /// The authenticated client's name (the API's `Caller`); `None`: no client (anonymous).
    pub client: Option<String>,
    /// The connection's remote address.
    pub source: Option<std::net::SocketAddr>,
}

impl Requester {
    fn participant(&self) -> Participant {
        Participant {
            user_id: self.client.clone().unwrap_or_else(|| "anonymous".into()),
            requestor: true,
            network_access_point: self.source.map(|s| s.ip().to_string()),
            ..Participant::default()
        }
    }
}

/// Query (a list or search) or Patient Record read (one item) through the API: the client,
/// its address, the path and query, and the ids of every patient in the answer.
pub fn api_read(edge_id: &str, who: &Requester, path: &str, patients: &[String], at: Timestamp) -> AuditRecord {
    let query = path.contains('?') || patients.len() != 1;
    let event = if query { dcm::QUERY } else { dcm::PATIENT_RECORD };
    let mut objects: Vec<AuditObject> = patients.iter().map(|p| patient(p)).collect();
    objects.push(AuditObject {
        type_code: 2,
        role: if query { 24 } else { 4 },
        id_type: uri(),
        id: path.to_owned(),
        name: None,
        description: None,
        details: Vec::new(),
    });
    AuditRecord {
        event: code(event),
        action: if query { Action::Execute } else { Action::Read },
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![who.participant(), this_edge(edge_id, None)],
        objects,
    }
}

/// DICOM Instances Accessed (action R): a copy of the whole store (every event, patient and
/// instance file) left through `path`, e.g. a backup. Named by the client and its address,
/// the path, and what the copy holds (`details`: last sequence number, events); not every
/// patient one by one (a backup holds them all).
pub fn instances_accessed(
    edge_id: &str,
    who: &Requester,
    path: &str,
    description: &str,
    details: Vec<(String, String)>,
    at: Timestamp,
) -> AuditRecord {
    let object = AuditObject {
        type_code: 2,
        role: 4,
        id_type: uri(),
        id: path.to_owned(),
        name: Some("zenedge store: the event log and every instance file".into()),
        description: Some(description.to_owned()),
        details,
    };
    instances_accessed_by(edge_id, who, Action::Read, object, at)
}

/// DICOM Instances Accessed (action U): an operator changed a forwarding dead letter through
/// `path` (`what`: "retry" or "skip"), naming the study, the SOP instance and the destination.
pub fn forward_letter_changed(
    edge_id: &str,
    who: &Requester,
    path: &str,
    what: &str,
    (destination, study_instance_uid, sop_instance_uid): (&str, &str, &str),
    at: Timestamp,
) -> AuditRecord {
    let details = vec![
        ("action".to_owned(), what.to_owned()),
        ("destination".to_owned(), destination.to_owned()),
        ("SOPInstanceUID".to_owned(), sop_instance_uid.to_owned()),
        ("path".to_owned(), path.to_owned()),
    ];
    let object = AuditObject {
        type_code: 2,
        role: 3,
        id_type: code(dcm::STUDY_INSTANCE_UID),
        id: study_instance_uid.to_owned(),
        name: None,
        description: Some(format!("forwarding dead letter: {what}")),
        details,
    };
    instances_accessed_by(edge_id, who, Action::Update, object, at)
}

/// DICOM Instances Accessed by `who` on this edge, successfully, with `action` on `object`.
fn instances_accessed_by(
    edge_id: &str,
    who: &Requester,
    action: Action,
    object: AuditObject,
    at: Timestamp,
) -> AuditRecord {
    AuditRecord {
        event: code(dcm::INSTANCES_ACCESSED),
        action,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![who.participant(), this_edge(edge_id, None)],
        objects: vec![object],
    }
}

/// Export (action R): a patient's data left the edge through `path` as an archive for `who`
/// (a data subject's request): the edge is the source, the requester the destination; every id
/// of the patient is an object, with the archive's last sequence number.
pub fn data_export(edge_id: &str, who: &Requester, path: &str, patient_ids: &[String], at: Timestamp) -> AuditRecord {
    let mut objects: Vec<AuditObject> = patient_ids.iter().map(|p| patient(p)).collect();
    objects.push(AuditObject {
        type_code: 2,
        role: 3,
        id_type: uri(),
        id: path.to_owned(),
        name: Some("patient data export: events, HL7 messages as received, DICOM Part 10 files".into()),
        description: None,
        details: Vec::new(),
    });
    let mut destination = who.participant();
    destination.role = Some(code(dcm::DESTINATION));
    AuditRecord {
        event: code(dcm::EXPORT),
        action: Action::Read,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![destination, this_edge(edge_id, Some(code(dcm::SOURCE)))],
        objects,
    }
}

/// Audit Log Used: somebody read the trail.
pub fn audit_log_used(edge_id: &str, who: &Requester, path: &str, at: Timestamp) -> AuditRecord {
    let object = AuditObject {
        type_code: 2,
        role: 13,
        id_type: uri(),
        id: path.to_owned(),
        name: Some("audit trail".into()),
        description: None,
        details: Vec::new(),
    };
    AuditRecord {
        event: code(dcm::AUDIT_LOG_USED),
        action: Action::Read,
        at,
        outcome: Outcome::Success,
        outcome_description: None,
        event_types: Vec::new(),
        participants: vec![who.participant(), this_edge(edge_id, None)],
        objects: vec![object],
    }
}

/// User Authentication (Login) failed at the API: a request presented a token of no client.
/// Named by the source address (the token itself is never recorded), with the path.
pub fn api_authentication_failed(edge_id: &str, who: &Requester, path: &str, at: Timestamp) -> AuditRecord {
    let object = AuditObject {
        type_code: 2,
        role: 13,
        id_type: uri(),
        id: path.to_owned(),
        name: None,
        description: Some("unknown API token".into()),
        details: Vec::new(),
    };
    AuditRecord {
        event: code(dcm::USER_AUTHENTICATION),
        action: Action::Execute,
        at,
        outcome: Outcome::MinorFailure,
        outcome_description: Some("the bearer token is not one of a configured client".into()),
        event_types: vec![code(dcm::LOGIN)],
        participants: vec![who.participant(), this_edge(edge_id, None)],
        objects: vec![object],
    }
}
