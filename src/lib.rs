//! zenedge: the per-hospital edge daemon.
//!
//! A map of the components, in the order data flows through them:
//!
//! * [`mllp`] — HL7 v2 over TCP: framing ([`mllp::codec`]), one task per connection,
//!   acknowledgement only after the log's commit returned.
//! * [`dicom`] — the C-ECHO/C-STORE SCP: instances spooled to disk, made durable, recorded;
//!   studies completed when they stop receiving instances.
//! * [`hl7`] — the HL7 v2 parser (no I/O): separators, escapes, charsets, the summary that
//!   goes into events, and the ACK builder.
//! * [`dicom_scan`] — the DICOM data-set scanner (no I/O): the identifiers an instance is
//!   filed and matched by, read without trusting declared lengths.
//! * [`log`] — the durable event log in redb: one writer thread with group commit, readers,
//!   the disk reserve, the schema version.
//! * [`projections`] — everything derived from the events (duplicate indexes, instances,
//!   studies), updated in the writer's transaction, rebuilt by replay.
//! * [`domain`] — the decisions: an HL7 message or a DICOM instance becomes events, matching,
//!   patient cases; each with its request to the log's single writer.
//! * [`events`] — the event catalog: what zenedge records, in the hub's vocabulary, with its
//!   versions.
//! * [`sync`] — upstream sync: the log delivered to the hub in order, at least once, over
//!   mutual TLS; the cursor, retries, circuit breaker and dead letters. [`sync::wire`] is
//!   the hub contract.
//! * [`hub`] — the reference hub (`zenedge hub`): stores each edge's events once per
//!   `(edge_id, seq)`.
//! * [`api`] — the local HTTP API: health, readiness, metrics, events, the read API.
//! * [`operator`] — the operator's tools beside the daemon: `zenedge backup`, `restore`,
//!   `events`.
//! * [`retention`] — the sweep that deletes old instance files once the hub has them.
//! * [`storage_hook`] — the seam in front of every durable write (log and instance files),
//!   where tests record, fail or leave out operations.
//! * [`config`] — the TOML file, validated before anything starts.
//! * [`ids`] — the DICOM UID check, SHA-256 digests in hex, the bound on patient ids: the one
//!   module parsers share with the daemon.
//! * [`tls_words`] — rustls errors in an admin's words (dates, not UNIX seconds).
//! * [`app`] — the composition root: start, run, drain, stop.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod dicom;
pub mod dicom_scan;
pub mod domain;
pub mod events;
pub mod hl7;
pub mod hub;
pub mod ids;
pub mod log;
pub mod mllp;
pub mod net;
pub mod operator;
pub mod projections;
pub mod retention;
pub mod storage_hook;
pub mod sync;
pub mod systemd;
pub mod telemetry;
pub mod tls_words;
