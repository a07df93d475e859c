//! MLLP: HL7 v2 over TCP from the hospital information system.
//!
//! Separate pieces, each importing only those after it:
//!
//! * [`server`] — the accept loop: connections under a limit, each a tracked task;
//! * [`connection`] — one connection: read a frame (timeouts, junk, a foreign protocol), hand
//!   it over, write the answer; one message in flight per connection, as HL7 senders expect;
//! * [`message`] — what a frame is answered with: parse, store through the domain's request
//!   (the answer waits for the commit), acknowledge;
//! * [`context`] — what every connection shares;
//! * [`codec`] — the framing (no I/O); [`app_ack`] — why no application acknowledgement
//!   follows, once per sender that asks.
//!
//! TLS will wrap the stream in [`server`] before it reaches [`connection`], which is generic
//! over the stream for that reason.

mod app_ack;
pub mod codec;
mod connection;
mod context;
mod message;
mod server;

pub use context::MllpContext;
pub use server::serve;
