use std::net::Ipv4Addr;

use super::*;
use crate::config::{CallingAe, CertificateMatch, Config};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_LOSSLESS: &str = "1.2.840.10008.1.2.4.70";

fn config() -> DicomConfig {
    Config::from_toml("[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n").unwrap().dicom
}

fn rq(calling: &str, called: &str, contexts: &[(&str, &[&str])]) -> AssociationRQ {
    AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling.into(),
        called_ae_title: called.into(),
        application_context_name: APPLICATION_CONTEXT.into(),
        presentation_contexts: contexts
            .iter()
            .enumerate()
            .map(|(i, (abs, ts))| PresentationContextProposed {
                id: (i * 2 + 1) as u8,
                abstract_syntax: (*abs).into(),
                transfer_syntaxes: ts.iter().map(|t| (*t).into()).collect(),
            })
            .collect(),
        user_variables: vec![UserVariableItem::MaxLength(32_768)],
    }
}

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn storage_and_verification_contexts_are_accepted_others_refused() {
    let find = "1.2.840.10008.5.1.4.1.2.2.1";
    let commitment = "1.2.840.10008.1.20.1";
    let request = rq(
        "CT01",
        "ZENEDGE",
        &[(VERIFICATION, &[IMPLICIT_VR_LE]), (CT, &[EXPLICIT]), (find, &[EXPLICIT]), (commitment, &[EXPLICIT])],
    );
    let (ac, negotiated) = negotiate(&request, LOCAL, None, &config()).unwrap();
    let reasons: Vec<_> = ac.presentation_contexts.iter().map(|p| p.reason.clone()).collect();
    use PresentationContextResultReason::*;
    assert_eq!(reasons, [Acceptance, Acceptance, AbstractSyntaxNotSupported, AbstractSyntaxNotSupported]);
    assert_eq!(negotiated.contexts.len(), 2);
    assert_eq!(negotiated.peer_max_pdu, 32_768);
    assert!(ac.user_variables.contains(&UserVariableItem::MaxLength(config().max_pdu_length)));
}

/// Every SOP class the dictionary knows, proposed in associations of up to 100 contexts:
/// each storage class is accepted, each other one (but Verification) refused.
#[test]
fn every_storage_class_of_the_dictionary_is_accepted_and_every_other_service_refused() {
    let listed = crate::dicom::sop_class::tests::listed();
    let (mut accepted, mut refused) = (0, 0);
    for chunk in listed.chunks(100) {
        let contexts: Vec<(&str, &[&str])> = chunk.iter().map(|(uid, _, _)| (*uid, &[EXPLICIT][..])).collect();
        let (ac, negotiated) = negotiate(&rq("CT01", "ZENEDGE", &contexts), LOCAL, None, &config()).unwrap();
        for ((uid, kind, name), result) in chunk.iter().zip(&ac.presentation_contexts) {
            let expected = match *kind {
                "storage" | "verification" => PresentationContextResultReason::Acceptance,
                _ => PresentationContextResultReason::AbstractSyntaxNotSupported,
            };
            assert_eq!(result.reason, expected, "{uid} {name}");
            if expected == PresentationContextResultReason::Acceptance {
                accepted += 1;
                assert!(negotiated.contexts.iter().any(|c| c.id == result.id && c.abstract_syntax == *uid));
            } else {
                refused += 1;
                let r = negotiated.refused.iter().find(|r| r.id == result.id).expect("listed as refused");
                let why =
                    if *kind == "non-patient" { ContextRefusal::NonPatientObject } else { ContextRefusal::NotStorage };
                assert_eq!((r.abstract_syntax.as_str(), r.reason), (*uid, why), "{name}");
            }
        }
    }
    assert!(accepted > 200 && refused > 90, "{accepted} accepted, {refused} refused");
}

#[test]
fn unknown_sop_classes_are_refused_unless_configured_and_never_when_not_a_uid() {
    assert_eq!(sop_class_refusal("1.2.3.4.5", false), Some(ContextRefusal::UnknownSopClass));
    assert_eq!(sop_class_refusal("1.2.3.4.5", true), None, "private class when configured");
    assert_eq!(sop_class_refusal("1.2.3.x", true), Some(ContextRefusal::UnknownSopClass));
    let request = rq("CT01", "ZENEDGE", &[(CT, &["1.2.3.999"])]);
    let (ac, negotiated) = negotiate(&request, LOCAL, None, &config()).unwrap();
    assert_eq!(ac.presentation_contexts[0].reason, PresentationContextResultReason::TransferSyntaxesNotSupported);
    assert_eq!(negotiated.refused[0].reason, ContextRefusal::NoTransferSyntax);
}

#[test]
fn the_proposers_order_wins_but_lossless_before_lossy() {
    assert_eq!(choose_transfer_syntax([EXPLICIT, IMPLICIT_VR_LE].into_iter()), Some(EXPLICIT));
    assert_eq!(choose_transfer_syntax([JPEG_LOSSLESS, EXPLICIT].into_iter()), Some(JPEG_LOSSLESS));
    assert_eq!(choose_transfer_syntax([JPEG_BASELINE, EXPLICIT].into_iter()), Some(EXPLICIT));
    assert_eq!(choose_transfer_syntax([JPEG_BASELINE].into_iter()), Some(JPEG_BASELINE));
    assert_eq!(choose_transfer_syntax(["1.2.3.999"].into_iter()), None);
}

#[test]
fn a_wrong_called_ae_is_refused_with_reason_7_unless_any_is_accepted() {
    let err = negotiate(&rq("CT01", "OTHER", &[(CT, &[EXPLICIT])]), LOCAL, None, &config()).unwrap_err();
    assert_eq!(err.reason, "called_ae");
    assert_eq!(
        err.rj.source,
        AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
    );
    let any = DicomConfig { accept_any_called_ae: true, ..config() };
    assert!(negotiate(&rq("CT01", "OTHER", &[(CT, &[EXPLICIT])]), LOCAL, None, &any).is_ok());
}

#[test]
fn calling_aes_not_on_the_allow_list_or_from_elsewhere_are_refused_with_reason_3() {
    let allow =
        vec![CallingAe { ae_title: "CT01".into(), from: Some("127.0.0.0/8".parse().unwrap()), certificate: None }];
    let cfg = DicomConfig { calling_ae_allow: allow, ..config() };
    assert!(negotiate(&rq("CT01", "ZENEDGE", &[(CT, &[EXPLICIT])]), LOCAL, None, &cfg).is_ok());
    let stranger = negotiate(&rq("MR99", "ZENEDGE", &[(CT, &[EXPLICIT])]), LOCAL, None, &cfg).unwrap_err();
    assert_eq!(
        stranger.rj.source,
        AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
    );
    let elsewhere = negotiate(&rq("CT01", "ZENEDGE", &[(CT, &[EXPLICIT])]), "192.0.2.1".parse().unwrap(), None, &cfg);
    assert_eq!(elsewhere.unwrap_err().reason, "calling_ae");
}

fn identity(cn: &str) -> PeerIdentity {
    PeerIdentity { subject_cn: Some(cn.into()), sans: Vec::new(), sha256_fingerprint: "00".repeat(32) }
}

/// An AE title bound to a certificate is taken only from that certificate: another one, or a
/// plain connection, is refused as a spoof (reason 3 on the wire, its own label for the alert);
/// AE titles bound to nothing are not affected.
#[test]
fn an_ae_title_bound_to_a_certificate_is_refused_with_any_other_certificate() {
    let bound = |ae: &str, cn: &str| CallingAe {
        ae_title: ae.into(),
        from: None,
        certificate: Some(CertificateMatch::Name(cn.into())),
    };
    let open = CallingAe { ae_title: "US01".into(), from: None, certificate: None };
    let cfg = DicomConfig { calling_ae_allow: vec![bound("CT01", "ct01.example"), open], ..config() };
    let (ct01, mr01) = (identity("ct01.example"), identity("mr01.example"));
    let request = |ae: &str| rq(ae, "ZENEDGE", &[(CT, &[EXPLICIT])]);
    assert!(negotiate(&request("CT01"), LOCAL, Some(&ct01), &cfg).is_ok());
    let spoofed = negotiate(&request("CT01"), LOCAL, Some(&mr01), &cfg).unwrap_err();
    assert_eq!(spoofed.reason, SPOOFED_CALLING_AE);
    assert_eq!(
        spoofed.rj.source,
        AssociationRJSource::ServiceUser(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
    );
    assert_eq!(negotiate(&request("CT01"), LOCAL, None, &cfg).unwrap_err().reason, SPOOFED_CALLING_AE);
    assert!(negotiate(&request("US01"), LOCAL, Some(&mr01), &cfg).is_ok(), "an unbound AE with any certificate");
    assert!(negotiate(&request("US01"), LOCAL, None, &cfg).is_ok());
    assert_eq!(negotiate(&request("XA01"), LOCAL, Some(&ct01), &cfg).unwrap_err().reason, "calling_ae");
}

const MWL: &str = "1.2.840.10008.5.1.4.31";
const IMPLICIT: &str = "1.2.840.10008.1.2";

#[test]
fn the_worklist_context_is_accepted_in_little_endian_only_when_the_worklist_is_on() {
    let contexts: &[(&str, &[&str])] = &[(MWL, &[JPEG_BASELINE, IMPLICIT, EXPLICIT]), (VERIFICATION, &[IMPLICIT])];
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (_, off) = negotiate(&rq("CT01", "ZENEDGE", contexts), ip, None, &config()).unwrap();
    assert_eq!(off.refused.iter().map(|r| r.abstract_syntax.as_str()).collect::<Vec<_>>(), [MWL]);
    let on = DicomConfig { worklist: true, ..config() };
    let (_, n) = negotiate(&rq("CT01", "ZENEDGE", contexts), ip, None, &on).unwrap();
    assert!(n.refused.is_empty(), "{:?}", n.refused);
    assert_eq!((n.contexts[0].abstract_syntax.as_str(), n.contexts[0].transfer_syntax.as_str()), (MWL, IMPLICIT));
    let (_, n) = negotiate(&rq("CT01", "ZENEDGE", &[(MWL, &[JPEG_BASELINE])]), ip, None, &on).unwrap();
    assert_eq!(n.refused[0].reason, ContextRefusal::NoTransferSyntax);
}

#[test]
fn with_a_commitment_destination_its_reports_are_accepted_with_the_roles_the_archive_proposes() {
    let commitment = crate::dicom::commitment::STORAGE_COMMITMENT;
    let mut request = rq("ARCHIVE", "ZENEDGE", &[(commitment, &[IMPLICIT_VR_LE])]);
    let roles = dicom_ul::pdu::RequestorRoles { scu: false, scp: true };
    request.user_variables.push(UserVariableItem::ScuScpRoleSelectionSubItem(commitment.into(), roles));
    let with = DicomConfig { commitment_archives: vec![("central".into(), "ARCHIVE".into())], ..config() };
    let (ac, negotiated) = negotiate(&request, LOCAL, None, &with).unwrap();
    assert_eq!(ac.presentation_contexts[0].reason, PresentationContextResultReason::Acceptance);
    assert_eq!(negotiated.contexts[0].abstract_syntax, commitment);
    assert!(ac.user_variables.contains(&UserVariableItem::ScuScpRoleSelectionSubItem(commitment.into(), roles)));
    // Without such a destination the class is refused and no role is agreed.
    let (ac, _) = negotiate(&request, LOCAL, None, &config()).unwrap();
    assert_eq!(ac.presentation_contexts[0].reason, PresentationContextResultReason::AbstractSyntaxNotSupported);
    assert!(!ac.user_variables.iter().any(|v| matches!(v, UserVariableItem::ScuScpRoleSelectionSubItem(..))));
}
