//! MLLP: HL7 v2 over TCP from the hospital information system.
//!
//! Separate pieces, each importing only those after it:
//!
//! * [`server`] — the accept loops: connections under a limit, each a tracked task; the plain
//!   one checks `mllp.allow_from`, the TLS one runs the handshake (a client certificate is
//!   required) and takes the peer's identity;
//! * [`connection`] — one connection: read a frame (timeouts, junk, a foreign protocol), hand
//!   it over, write the answer; one message in flight per connection, as HL7 senders expect;
//! * [`message`] — what a frame is answered with: parse, check the sender binding
//!   ([`senders`]), store through the domain's request (the answer waits for the commit),
//!   acknowledge;
//! * [`context`] — what every connection shares;
//! * [`codec`] — the framing (no I/O); [`app_ack`] — why no application acknowledgement
//!   follows, once per sender that asks.
//!
//! TLS wraps the stream in [`server`] before it reaches [`connection`], which is generic over
//! the stream ([`crate::net::Stream`]).

mod app_ack;
pub mod codec;
mod connection;
mod context;
mod message;
mod senders;
mod server;

pub use context::MllpContext;
pub use server::{serve, serve_tls};
