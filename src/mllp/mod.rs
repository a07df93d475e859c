//! MLLP: HL7 v2 over TCP from the hospital information system.
//!
//! [`codec`] frames bytes (no I/O), [`server`] accepts connections under a limit, and
//! [`connection`] runs one connection: read a frame, parse it, have the log commit it,
//! answer with the ACK — one message in flight per connection, as HL7 senders expect.
//! [`app_ack`] says why no application acknowledgement follows, once per sender that asks.
//! TLS will wrap the stream in [`server`] before it reaches [`connection`], which is
//! generic over the stream for that reason.

mod app_ack;
pub mod codec;
mod connection;
mod server;

pub use server::{MllpContext, serve};
