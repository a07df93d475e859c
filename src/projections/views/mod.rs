//! The read queries over the projections, with the shapes they answer in: a study with its
//! series and instances ([`studies`]), an order with the studies it matched ([`orders`]), a
//! patient case with its studies and their orders ([`cases`]), the recorded pairs
//! ([`mod@matches`]), the orders and studies still waiting for a match ([`waiting`]), the modality
//! worklist ([`mod@worklist`]), and the searches. Each file holds one projection's shapes first, then its queries.
//!
//! Each query is one redb read transaction, so a view is one committed snapshot and never
//! blocks the writer. The tables and their row types stay where the projections define them
//! ([`super::tables`], [`super::dicom`], [`super::orders`], [`super::cases`]); the shapes
//! here are the API's, mapped field by field so that a change of a stored row cannot change
//! the API unnoticed.
//!
//! # Paging
//!
//! * **Matches** are paged by the seq of their `StudyMatched`. A pair recorded later always
//!   has a higher seq, so a client that follows `next` (or polls with the last seq it saw)
//!   never misses one. A pair undone by a `StudyUnmatched` (the order's accession number was
//!   corrected) leaves the list; the event itself is in the log and its stream. The `matches` table is keyed by (study, order), so a page scans it
//!   once and keeps the `limit` smallest seqs after the cursor: memory is bounded by `limit`,
//!   and the table has one row per match, far fewer than the log has events.
//! * **Waiting orders and studies** are listed oldest first, the order a coordinator works
//!   through them. The indexes are keyed by accession, so a page reads the keys and times of
//!   the whole index (small: only what still waits), sorts them by (waiting since, id), and
//!   reads rows for its own items only. The cursor is the last item's `<µs>:<id>`
//!   ([`WaitingCursor`]): keyset paging, no offsets, so entries that stop waiting between
//!   two pages shift nothing and an entry that starts waiting later sorts after the cursor.
//! * **Searches** return every hit, at most [`MAX_HITS`], with `truncated` set when there
//!   were more.

pub mod cases;
pub mod matches;
pub mod orders;
pub mod patients;
pub mod studies;
pub mod waiting;
pub mod worklist;

use jiff::Timestamp;
use redb::{ReadOnlyTable, ReadTransaction, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use cases::{CaseStudy, CaseView, MatchedOrder, case, search_cases};
pub use matches::{MatchPage, MatchQuery, MatchView, matches};
pub use orders::{MatchedStudy, OrderView, order, search_orders};
pub use studies::{
    InstanceView, PendingStudy, SeriesView, StudyHit, StudySummary, StudyView, Totals, names_file, pending_studies,
    search_studies, study, totals,
};
pub use waiting::{
    WaitingCursor, WaitingOrder, WaitingPage, WaitingQuery, WaitingStudy, unmatched_orders, unmatched_studies,
    waiting_counts,
};
pub use worklist::{WorklistQuery, WorklistView, worklist, worklist_items, worklist_items_where};

use super::tables::{Key3, Key4};
use crate::config::Site;
use crate::log::{ReadError, Storage, decode_row};

/// The most hits a search returns.
pub const MAX_HITS: usize = 1000;

/// What a search of orders or studies looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    Accession(String),
    /// Any of the patient's ids as the message or data set gave them.
    PatientId(String),
}

/// Search results, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hits<T> {
    pub items: Vec<T>,
    /// There were more than [`MAX_HITS`]; the newest were left out.
    pub truncated: bool,
}

impl<T> Hits<T> {
    fn capped(mut items: Vec<T>) -> Hits<T> {
        let truncated = items.len() > MAX_HITS;
        items.truncate(MAX_HITS);
        Hits { items, truncated }
    }
}

/// (tenant, hospital): the key prefix of everything the site stores.
pub(crate) type Scope<'a> = (&'a str, &'a str);

pub(crate) fn scope(site: &Site) -> Scope<'_> {
    (site.tenant_id.as_str(), site.hospital_id.as_str())
}

pub(crate) fn timestamp(table: &'static str, us: i64) -> Result<Timestamp, ReadError> {
    Timestamp::from_microsecond(us).map_err(|e| ReadError::Row { table, reason: e.to_string() })
}

/// A msgpack row of a `(tenant, hospital, id)` table.
pub(crate) fn row<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<Key3, &[u8]>,
    name: &'static str,
    s: Scope<'_>,
    id: &str,
) -> Result<Option<T>, ReadError> {
    match txn.open_table(table).storage()?.get((s.0, s.1, id)).storage()? {
        Some(bytes) => decode_row(name, bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Entries of a 4-part-key table under the scope and, when given, `first`, in key order:
/// (third key part, fourth key part, value).
pub(crate) fn scan<V, X>(
    table: &ReadOnlyTable<Key4, V>,
    s: Scope<'_>,
    first: Option<&str>,
) -> Result<Vec<(String, String, X)>, ReadError>
where
    V: for<'a> redb::Value<SelfType<'a> = X> + 'static,
{
    let mut out = Vec::new();
    for entry in table.range((s.0, s.1, first.unwrap_or(""), "")..).storage()? {
        let (key, value) = entry.storage()?;
        let (kt, kh, third, fourth) = key.value();
        if (kt, kh) != s || first.is_some_and(|f| f != third) {
            break;
        }
        out.push((third.to_owned(), fourth.to_owned(), value.value()));
    }
    Ok(out)
}
