//! Whose data an event is: the events of one patient, gathered in one pass over the log in
//! sequence order (what a patient's data export holds, `GET /api/v1/patients/{id}/export`).
//!
//! An event belongs to the patient when it names one of the patient's ids (HL7 PID-2/3/4,
//! DICOM Patient ID and Other Patient IDs, a case's or an order's resolved ids, a merge's
//! surviving or prior ids), or when it refers to something an earlier event of the patient
//! brought: the HL7 message (by its event id), an order, a study, a case, or an instance (by
//! the seq of its `InstanceStored`). Every reference in the catalog points backwards in the
//! log (a match follows the study and the message it pairs, a forward follows the stored
//! instance), so one pass in order is enough. The caller supplies the ids merged into the
//! patient (ADT^A40) before the pass, since those events precede the merge that joins them.

use std::collections::HashSet;

use uuid::Uuid;

use super::{Event, Hl7MessageReceived};

/// The ids of one patient and everything the patient's events brought so far.
#[derive(Debug, Default)]
pub struct PatientEvents {
    patient_ids: HashSet<String>,
    messages: HashSet<String>,
    orders: HashSet<String>,
    studies: HashSet<String>,
    cases: HashSet<String>,
    instances: HashSet<u64>,
}

impl PatientEvents {
    /// A gatherer for a patient known by `patient_ids` (the id asked for and the ids merged
    /// into it).
    pub fn new(patient_ids: impl IntoIterator<Item = String>) -> PatientEvents {
        PatientEvents { patient_ids: patient_ids.into_iter().collect(), ..PatientEvents::default() }
    }

    /// Whether event `seq` (`event_id`) is the patient's; when it is, what it brings is
    /// remembered for the events after it. Call in sequence order.
    pub fn take(&mut self, seq: u64, event_id: Uuid, event: &Event) -> bool {
        let mine = self.names_patient(event) || self.refers_to_known(event);
        if mine {
            self.remember(seq, event_id, event);
        }
        mine
    }

    fn names_patient(&self, event: &Event) -> bool {
        let ids = &self.patient_ids;
        let any = |list: &[String]| list.iter().any(|id| ids.contains(id));
        let one = |id: &Option<String>| id.as_ref().is_some_and(|id| ids.contains(id));
        match event {
            Event::Hl7MessageReceived(m) => {
                let prior = m.summary.merge.iter().flat_map(|merge| &merge.prior_identifiers);
                message_patient_ids(m).iter().any(|id| ids.contains(*id))
                    || prior.into_iter().any(|p| ids.contains(&p.id))
            }
            Event::InstanceStored(i) => one(&i.patient_id) || any(&i.other_patient_ids),
            Event::StudyCompleted(s) => one(&s.patient_id) || any(&s.other_patient_ids),
            Event::OrderCreated(o) => any(&o.patient_ids),
            Event::PatientCaseCreated(c) => any(&c.patient_ids),
            Event::PatientCaseConsolidated(c) => ids.contains(&c.via_patient_id) || any(&c.patient_ids),
            Event::PatientsMerged(m) => ids.contains(&m.surviving_patient_id) || any(&m.prior_patient_ids),
            _ => false,
        }
    }

    fn refers_to_known(&self, event: &Event) -> bool {
        let message = |id: &String| self.messages.contains(id);
        // An order id is `<message event id>:<group>`: the orders of the patient's messages
        // are the patient's before any `OrderCreated` names them.
        let order = |id: &String| {
            self.orders.contains(id) || id.rsplit_once(':').is_some_and(|(m, _)| self.messages.contains(m))
        };
        let study = |uid: &String| self.studies.contains(uid);
        match event {
            Event::StudyCompleted(s) => study(&s.study_instance_uid),
            Event::StudyMatched(m) => study(&m.study_instance_uid) || order(&m.order_id) || message(&m.hl7_message_id),
            Event::Hl7MessageMatched(m) => {
                study(&m.study_instance_uid) || order(&m.order_id) || message(&m.hl7_message_id)
            }
            Event::StudyUnmatched(u) => {
                study(&u.study_instance_uid) || order(&u.order_id) || message(&u.hl7_message_id)
            }
            Event::OrderCreated(o) => order(&o.order_id) || message(&o.hl7_message_id) || study(&o.study_instance_uid),
            Event::Hl7MessageUpdated(u) => order(&u.order_id),
            Event::OrderUpdated(u) => order(&u.order_id),
            Event::OrderCancelled(c) => order(&c.order_id),
            Event::PatientCaseCreated(c) => study(&c.study_instance_uid),
            Event::PatientCaseConsolidated(c) => self.cases.contains(&c.case_id) || study(&c.study_instance_uid),
            Event::PatientCaseClassified(c) => self.cases.contains(&c.case_id),
            Event::InstanceFileDeleted(d) => self.instances.contains(&d.instance_seq),
            Event::InstanceForwarded(f) => self.instances.contains(&f.instance_seq),
            Event::InstancesCommitted(c) => {
                c.committed.iter().chain(&c.failed).any(|i| self.instances.contains(&i.instance_seq))
            }
            _ => false,
        }
    }

    fn remember(&mut self, seq: u64, event_id: Uuid, event: &Event) {
        match event {
            Event::Hl7MessageReceived(_) => {
                self.messages.insert(event_id.to_string());
            }
            Event::InstanceStored(i) => {
                self.instances.insert(seq);
                self.studies.insert(i.study_instance_uid.clone());
            }
            Event::StudyCompleted(s) => {
                self.studies.insert(s.study_instance_uid.clone());
            }
            Event::OrderCreated(o) => {
                self.orders.insert(o.order_id.clone());
                self.cases.extend(o.patient_case_id.clone());
            }
            Event::PatientCaseCreated(c) => {
                self.cases.insert(c.case_id.clone());
            }
            Event::PatientCaseConsolidated(c) => {
                self.cases.insert(c.case_id.clone());
            }
            _ => {}
        }
    }
}

/// The patient ids an HL7 message names: PID's primary id and every other identifier.
pub fn message_patient_ids(message: &Hl7MessageReceived) -> Vec<&str> {
    let Some(patient) = &message.summary.patient else { return Vec::new() };
    let mut ids: Vec<&str> = patient.id.as_deref().into_iter().collect();
    for identifier in &patient.identifiers {
        if !identifier.id.is_empty() && !ids.contains(&identifier.id.as_str()) {
            ids.push(&identifier.id);
        }
    }
    ids
}
