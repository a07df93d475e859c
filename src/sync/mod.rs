//! Upstream sync: the edge's log, delivered to the hub at least once and in order, stored
//! there exactly once per `(edge_id, seq)` (invariant 5). The contract on the wire is in
//! [`wire`].

pub mod status;
pub mod wire;
