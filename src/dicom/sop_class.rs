//! What a SOP class is, decided by its UID the way PS3.4 files it, not by its English name.
//!
//! The SCP takes the **Storage Service Class** (PS3.4 Annex B): the objects of a patient's
//! studies, which the edge files by study and series. The standard allocates their UIDs
//! under one root, `1.2.840.10008.5.1.4.1.1.` (CT `…1.1.2`, Digital X-Ray For Presentation
//! `…1.1.1.1`, Breast Projection X-Ray `…1.1.13.1.4`…), except a few listed in B.5 under the
//! RT delivery instruction root and three retired print objects; both are listed here. Under
//! the root there are also SOP classes of other service classes, excluded by UID:
//!
//! * Non-Patient Object Storage (PS3.4 Annex GG): defined procedure protocols, protocol
//!   approvals, inventories (and, outside the root, hanging protocols, color palettes and
//!   implant templates). They belong to no patient and carry no study or series, so the
//!   edge cannot file them: refused at negotiation rather than answered `0xC000` after the
//!   transfer;
//! * the query/retrieve and creation services of protocol approvals and inventories.
//!
//! A name ending in "Storage" is no guide: "Digital X-Ray Image Storage - For Presentation"
//! does not, "Hanging Protocol Storage" does. dicom-dictionary-std gives names and a UID
//! type but no service class, so the dictionary only says whether a UID is a standard SOP
//! class at all (and its name and keyword for logs and metrics);
//! `testdata/sop_classes.tsv` lists every SOP class of the dictionary with its service class
//! and the tests check the two agree.

use dicom_core::dictionary::{UidDictionary, UidDictionaryEntryRef, UidType};
use dicom_dictionary_std::StandardSopClassDictionary;

/// The Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// The root under which the standard allocates Storage SOP classes (PS3.4 B.5).
const STORAGE_ROOT: &str = "1.2.840.10008.5.1.4.1.1.";

/// Storage SOP classes of PS3.4 B.5 outside [`STORAGE_ROOT`].
const STORAGE_ELSEWHERE: &[&str] = &[
    "1.2.840.10008.5.1.4.34.1",  // RT Beams Delivery Instruction Storage - Trial (retired)
    "1.2.840.10008.5.1.4.34.7",  // RT Beams Delivery Instruction Storage
    "1.2.840.10008.5.1.4.34.10", // RT Brachy Application Setup Delivery Instruction Storage
    "1.2.840.10008.5.1.1.27",    // Stored Print Storage (retired)
    "1.2.840.10008.5.1.1.29",    // Hardcopy Grayscale Image Storage (retired)
    "1.2.840.10008.5.1.1.30",    // Hardcopy Color Image Storage (retired)
];

/// Non-Patient Object Storage SOP classes (PS3.4 GG.3), under the root or not.
const NON_PATIENT: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.200.1", // CT Defined Procedure Protocol Storage
    "1.2.840.10008.5.1.4.1.1.200.3", // Protocol Approval Storage
    "1.2.840.10008.5.1.4.1.1.200.7", // XA Defined Procedure Protocol Storage
    "1.2.840.10008.5.1.4.1.1.201.1", // Inventory Storage
    "1.2.840.10008.5.1.4.38.1",      // Hanging Protocol Storage
    "1.2.840.10008.5.1.4.39.1",      // Color Palette Storage
    "1.2.840.10008.5.1.4.43.1",      // Generic Implant Template Storage
    "1.2.840.10008.5.1.4.44.1",      // Implant Assembly Template Storage
    "1.2.840.10008.5.1.4.45.1",      // Implant Template Group Storage
];

/// SOP classes of other services under the storage root.
const OTHER_SERVICES_UNDER_ROOT: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.200.4", // Protocol Approval Information Model - FIND
    "1.2.840.10008.5.1.4.1.1.200.5", // … - MOVE
    "1.2.840.10008.5.1.4.1.1.200.6", // … - GET
    "1.2.840.10008.5.1.4.1.1.201.2", // Inventory - FIND
    "1.2.840.10008.5.1.4.1.1.201.3", // Inventory - MOVE
    "1.2.840.10008.5.1.4.1.1.201.4", // Inventory - GET
    "1.2.840.10008.5.1.4.1.1.201.5", // Inventory Creation
    "1.2.840.10008.5.1.4.1.1.201.6", // Repository Query
];

/// What a SOP class UID is, as far as this SCP is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SopClassKind {
    /// C-ECHO.
    Verification,
    /// A Storage SOP class of PS3.4 Annex B: accepted.
    Storage,
    /// Non-Patient Object Storage (PS3.4 Annex GG): no patient, study or series.
    NonPatientObject,
    /// A standard SOP class of another service (query/retrieve, worklist, print…).
    OtherService,
    /// Not a SOP class of the standard dictionary (private, or from a newer edition).
    Unknown,
}

/// The standard dictionary's entry for a SOP class UID.
pub fn entry(uid: &str) -> Option<&'static UidDictionaryEntryRef<'static>> {
    StandardSopClassDictionary.by_uid(uid).filter(|e| e.r#type == UidType::SopClass)
}

/// What `uid` is.
pub fn classify(uid: &str) -> SopClassKind {
    if uid == VERIFICATION {
        return SopClassKind::Verification;
    }
    if entry(uid).is_none() {
        return SopClassKind::Unknown;
    }
    if NON_PATIENT.contains(&uid) {
        SopClassKind::NonPatientObject
    } else if (uid.starts_with(STORAGE_ROOT) && !OTHER_SERVICES_UNDER_ROOT.contains(&uid))
        || STORAGE_ELSEWHERE.contains(&uid)
    {
        SopClassKind::Storage
    } else {
        SopClassKind::OtherService
    }
}

#[cfg(test)]
#[path = "sop_class_tests.rs"]
pub(crate) mod tests;
