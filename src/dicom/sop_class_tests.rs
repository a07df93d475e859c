use super::*;

/// `testdata/sop_classes.tsv`: (uid, kind, name) for every SOP class of the dictionary.
pub(crate) fn listed() -> Vec<(&'static str, &'static str, &'static str)> {
    include_str!("testdata/sop_classes.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let mut fields = l.split('\t');
            let mut next = || fields.next().expect("uid, kind and name");
            (next(), next(), next())
        })
        .collect()
}

#[test]
fn the_list_of_sop_classes_is_the_dictionarys() {
    let listed = listed();
    assert!(listed.len() > 300, "the dictionary knows more than {} SOP classes", listed.len());
    for (uid, _, name) in &listed {
        let entry = entry(uid).unwrap_or_else(|| panic!("{uid} ({name}) is not in the dictionary"));
        assert_eq!(entry.name, *name, "{uid}");
    }
    // The classes a name-based test once missed, and the first non-patient one, are there.
    use dicom_dictionary_std::uids;
    for uid in [
        uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        uids::DIGITAL_MAMMOGRAPHY_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
        uids::BREAST_PROJECTION_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        uids::INTRAVASCULAR_OPTICAL_COHERENCE_TOMOGRAPHY_IMAGE_STORAGE_FOR_PROCESSING,
        uids::RT_BEAMS_DELIVERY_INSTRUCTION_STORAGE,
        uids::HANGING_PROTOCOL_STORAGE,
    ] {
        assert!(listed.iter().any(|(u, _, _)| *u == uid), "{uid} missing from testdata/sop_classes.tsv");
    }
}

#[test]
fn every_sop_class_of_the_dictionary_is_classified_as_the_standard_files_it() {
    for (uid, kind, name) in listed() {
        let expected = match kind {
            "storage" => SopClassKind::Storage,
            "non-patient" => SopClassKind::NonPatientObject,
            "verification" => SopClassKind::Verification,
            "other" => SopClassKind::OtherService,
            other => panic!("unknown kind {other:?} for {uid}"),
        };
        assert_eq!(classify(uid), expected, "{uid} {name}");
    }
}

#[test]
fn storage_classes_whose_names_do_not_end_in_storage_are_storage() {
    for uid in [
        "1.2.840.10008.5.1.4.1.1.1.1",     // Digital X-Ray Image Storage - For Presentation
        "1.2.840.10008.5.1.4.1.1.1.1.1",   // … - For Processing
        "1.2.840.10008.5.1.4.1.1.1.2",     // Digital Mammography X-Ray Image Storage - For Presentation
        "1.2.840.10008.5.1.4.1.1.1.3.1",   // Digital Intra-Oral X-Ray Image Storage - For Processing
        "1.2.840.10008.5.1.4.1.1.13.1.4",  // Breast Projection X-Ray Image Storage - For Presentation
        "1.2.840.10008.5.1.4.1.1.14.2",    // Intravascular OCT Image Storage - For Processing
        "1.2.840.10008.5.1.4.1.1.2.3",     // CT Image Storage - For Processing
        "1.2.840.10008.5.1.4.1.1.88.4",    // Comprehensive SR Storage - Trial (Retired)
        "1.2.840.10008.5.1.4.1.1.501.2.1", // DICOS Digital X-Ray Image Storage - For Presentation
    ] {
        assert_eq!(classify(uid), SopClassKind::Storage, "{uid}");
    }
}

#[test]
fn other_services_under_the_storage_root_and_unknown_uids_are_not_storage() {
    assert_eq!(classify("1.2.840.10008.5.1.4.1.1.201.2"), SopClassKind::OtherService, "Inventory - FIND");
    assert_eq!(classify("1.2.840.10008.5.1.4.1.1.200.1"), SopClassKind::NonPatientObject);
    assert_eq!(classify("1.2.840.10008.1.20.1"), SopClassKind::OtherService, "storage commitment");
    assert_eq!(classify("1.2.840.10008.1.3.10"), SopClassKind::OtherService, "media storage directory");
    assert_eq!(classify("1.2.840.10008.5.1.4.1.1.999999"), SopClassKind::Unknown, "not in the dictionary");
    assert_eq!(classify("1.2.840.10008.1.2.1"), SopClassKind::Unknown, "a transfer syntax is no SOP class");
}
