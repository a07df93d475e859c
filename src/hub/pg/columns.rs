//! The columns of `hub_events` read out of an envelope: the fields of the envelope itself
//! (tenant, hospital, times, aggregate) and, from the event's data when it has them, the
//! patient ids and the accession number. The envelope is stored whole beside them; a field
//! that is absent or of an unexpected shape leaves its column NULL (an event type this
//! binary does not know is stored all the same).

use jiff::Timestamp;
use serde::Deserialize;

/// The queryable columns of one event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Columns {
    pub tenant_id: Option<String>,
    pub hospital_id: Option<String>,
    pub occurred_at: Option<Timestamp>,
    pub recorded_at: Option<Timestamp>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    /// `None` when the event names no patient.
    pub patient_ids: Option<Vec<String>>,
    pub accession: Option<String>,
}

#[derive(Deserialize)]
struct Head {
    tenant_id: Option<String>,
    hospital_id: Option<String>,
    occurred_at: Option<Timestamp>,
    recorded_at: Option<Timestamp>,
    aggregate: Option<Aggregate>,
}

#[derive(Deserialize)]
struct Aggregate {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
}

/// The head and the data in one pass (the common case).
#[derive(Deserialize)]
struct Whole {
    tenant_id: Option<String>,
    hospital_id: Option<String>,
    occurred_at: Option<Timestamp>,
    recorded_at: Option<Timestamp>,
    aggregate: Option<Aggregate>,
    data: Option<Data>,
}

/// The identifying fields the event types carry (`InstanceStored`, `StudyCompleted`,
/// `OrderCreated`… at the top of `data`; `HL7MessageReceived` in its `summary`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Data {
    patient_id: Option<String>,
    other_patient_ids: Vec<String>,
    accession_number: Option<String>,
    accession: Option<String>,
    summary: Option<Summary>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Summary {
    patient: Option<Patient>,
    orders: Vec<Order>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Patient {
    id: Option<String>,
    identifiers: Vec<Identifier>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Identifier {
    id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Order {
    accession_number: Option<String>,
}

/// The columns of the envelope `bytes` (already checked to have a head).
pub fn columns(bytes: &[u8]) -> Columns {
    // One pass when the data has the expected shape; the head alone otherwise.
    let (head, data) = match rmp_serde::from_slice::<Whole>(bytes) {
        Ok(w) => {
            let head = Head {
                tenant_id: w.tenant_id,
                hospital_id: w.hospital_id,
                occurred_at: w.occurred_at,
                recorded_at: w.recorded_at,
                aggregate: w.aggregate,
            };
            (Some(head), w.data)
        }
        Err(_) => (rmp_serde::from_slice::<Head>(bytes).ok(), None),
    };
    let mut out = Columns::default();
    if let Some(head) = head {
        out.tenant_id = head.tenant_id;
        out.hospital_id = head.hospital_id;
        out.occurred_at = head.occurred_at;
        out.recorded_at = head.recorded_at;
        if let Some(aggregate) = head.aggregate {
            (out.aggregate_type, out.aggregate_id) = (aggregate.kind, aggregate.id);
        }
    }
    let Some(data) = data else { return out };
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: String| {
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    };
    data.patient_id.into_iter().for_each(&mut add);
    data.other_patient_ids.into_iter().for_each(&mut add);
    let mut accession = data.accession_number.or(data.accession);
    if let Some(summary) = data.summary {
        if let Some(patient) = summary.patient {
            patient.id.into_iter().for_each(&mut add);
            patient.identifiers.into_iter().map(|i| i.id).for_each(&mut add);
        }
        accession = accession.or_else(|| summary.orders.into_iter().find_map(|o| o.accession_number));
    }
    out.patient_ids = (!ids.is_empty()).then_some(ids);
    out.accession = accession.filter(|a| !a.is_empty());
    out
}

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
