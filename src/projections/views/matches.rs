//! The recorded pairs of a study and an order, in the order they were matched.

use std::collections::BinaryHeap;

use serde::Serialize;

use super::{row, scan, scope};
use crate::log::{LogReader, ReadError, Storage};
use crate::projections::orders::OrderRow;
use crate::projections::tables::{MATCHES, MATCHES_BY_ORDER, ORDERS, ORDERS_BY_ACCESSION};

/// One recorded pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchView {
    /// The seq of its `StudyMatched`.
    pub seq: u64,
    pub study_instance_uid: String,
    pub order_id: String,
    pub accession_number: Option<String>,
}

/// Which pairs to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchQuery<'a> {
    /// Pairs whose `StudyMatched` seq is greater.
    pub after: u64,
    pub limit: usize,
    /// Only the pairs of orders with this accession number.
    pub accession: Option<&'a str>,
}

/// A page of pairs in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchPage {
    pub items: Vec<MatchView>,
    /// The `after` of the next page; `None` when this page holds the last pair.
    pub next: Option<u64>,
}

/// A page of recorded pairs in the seq order of their `StudyMatched`.
pub fn matches(reader: &LogReader, query: &MatchQuery<'_>) -> Result<MatchPage, ReadError> {
    let txn = reader.begin_read()?;
    let s = scope(reader.site());
    let mut page = Smallest::new(query.after, query.limit);
    match query.accession {
        None => {
            for row in txn.open_table(MATCHES).storage()?.range((s.0, s.1, "", "")..).storage()? {
                let (key, seq) = row.storage()?;
                let (kt, kh, study, order_id) = key.value();
                if (kt, kh) != s {
                    break;
                }
                page.offer(seq.value(), study, order_id);
            }
        }
        Some(accession) => {
            let by_order = txn.open_table(MATCHES_BY_ORDER).storage()?;
            for (_, order_id, ()) in scan(&txn.open_table(ORDERS_BY_ACCESSION).storage()?, s, Some(accession))? {
                for (_, study, seq) in scan(&by_order, s, Some(&order_id))? {
                    page.offer(seq, &study, &order_id);
                }
            }
        }
    }
    let (pairs, more) = page.finish();
    let mut items = Vec::with_capacity(pairs.len());
    for (seq, study_instance_uid, order_id) in pairs {
        let order: Option<OrderRow> = row(&txn, ORDERS, "orders", s, &order_id)?;
        let accession_number = order.map(|o| o.accession_number);
        items.push(MatchView { seq, study_instance_uid, order_id, accession_number });
    }
    let next = if more { items.last().map(|m| m.seq) } else { None };
    Ok(MatchPage { items, next })
}

/// Keeps the `limit` pairs with the smallest seqs above `after` out of any number offered.
struct Smallest {
    after: u64,
    limit: usize,
    heap: BinaryHeap<(u64, String, String)>,
    more: bool,
}

impl Smallest {
    fn new(after: u64, limit: usize) -> Smallest {
        Smallest { after, limit: limit.max(1), heap: BinaryHeap::new(), more: false }
    }

    fn offer(&mut self, seq: u64, study: &str, order_id: &str) {
        if seq <= self.after {
            return;
        }
        if self.heap.len() == self.limit {
            self.more = true;
            if self.heap.peek().is_some_and(|(largest, _, _)| *largest < seq) {
                return;
            }
            self.heap.pop();
        }
        self.heap.push((seq, study.to_owned(), order_id.to_owned()));
    }

    /// The kept pairs in seq order, and whether others were left out.
    fn finish(self) -> (Vec<(u64, String, String)>, bool) {
        (self.heap.into_sorted_vec(), self.more)
    }
}

#[cfg(test)]
#[path = "matches_tests.rs"]
mod tests;
