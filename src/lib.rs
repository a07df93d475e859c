//! zenedge: the per-hospital edge daemon.
//!
//! A map of the components, top to bottom: each imports only the ones below it (checked by
//! `tests/it/layers.rs`).
//!
//! * [`app`] — the composition root: open the log, start every service, drain, stop. The
//!   binary's `main` parses the command line ([`cli`]) and calls it or an operator command.
//! * Services:
//!   * [`mllp`] — HL7 v2 over TCP and TLS: accept loops, one task per connection, sender
//!     bindings, the answer after the log's commit; [`mllp::codec`] frames bytes (no I/O).
//!   * [`dicom`] — the C-ECHO/C-STORE SCP: negotiation, instances spooled to disk and made
//!     durable, the answer after the commit; studies completed when their instances stop.
//!   * [`api`] — the local HTTP API: health, readiness, metrics, events, the read API, operator
//!     actions behind one authorization module.
//!   * [`sync`] — upstream sync: the log delivered to the hub in order, at least once, over
//!     mutual TLS; its cursor and dead letters; [`sync::wire`] is the hub contract.
//!   * [`operator`] — the operator's commands: `status`, `backup`, `restore`, `events`,
//!     `dead-letters`, `sync fork`, `rebuild`, `verify`; the snapshot behind backups.
//!   * [`syslog`] — the audit trail forwarded to a syslog collector (RFC 5424 over UDP or
//!     RFC 5425 over TLS) from a durable cursor.
//!   * [`forward`] — every stored instance sent to the central archive(s) as stored, from a
//!     durable cursor per destination; the archive's answers and confirmations as events.
//!   * [`backups`] — scheduled online backups into a directory: taken, checked, pruned, and
//!     their last success and failure reported.
//!   * [`retention`] — the sweep that deletes old instance files once every required archive
//!     confirmed holding them.
//!   * [`hub`] — the reference hub (`zenedge hub`): stores each edge's events once per
//!     `(edge_id, seq)`.
//!   * [`systemd`] — readiness and the watchdog.
//! * [`domain`] — the decisions: an HL7 message or a DICOM instance becomes events, orders meet
//!   studies, patient cases form; each with its request to the log's single writer.
//! * [`projections`] — everything derived from the events (duplicate indexes, instances,
//!   studies, orders, matches, cases), applied in the writer's transaction, rebuilt by replay,
//!   and the read queries over them.
//! * [`audit`] — the audit trail (IHE ATNA): DICOM PS3.15 A.5 records of every receipt and read
//!   of patient data and every security event, in a table beside the log, committed in the
//!   intake's own transaction or batched by the writer.
//! * [`events`] — the event catalog: what zenedge records, in the hub's vocabulary, with its
//!   versions.
//! * [`log`] — the storage engine: the redb file, envelopes, one writer thread with group
//!   commit told what to do by the layer above, readers, the disk reserve, fault seams.
//! * Shared below: [`config`] (the TOML file, validated before anything starts),
//!   [`telemetry`], [`activity`] (each listener's answers over the last 24 hours, for the
//!   status page, saved across restarts), [`storage_hook`] (the seam in front of every durable write, where tests
//!   record, fail or leave out operations), [`net`] (socket settings, the accept loop, the
//!   stream a listener serves, plain or TLS), [`tls`] (the edge's server identity shared by
//!   every TLS listener, the handshake under a deadline, reloads, the checks of TLS files),
//!   [`security`] (the peer's certificate identity, the one function every security alert goes
//!   through), [`tls_words`] (rustls errors in an admin's words), [`cli`] (the command line's
//!   arguments, its exit codes, loading a subcommand's config).
//! * Parsers (no I/O, nothing of the daemon): [`hl7`] (separators, escapes, charsets, the
//!   summary that goes into events, the ACK builder), [`dicom_scan`] (the identifiers of a
//!   data set, read without trusting its lengths) and the DIMSE command reader
//!   ([`dicom::dimse`]), sharing [`ids`] (the UID check, SHA-256 digests in hex).

pub mod activity;
pub mod api;
pub mod app;
pub mod audit;
pub mod backups;
pub mod cli;
pub mod config;
pub mod dicom;
pub mod dicom_scan;
pub mod domain;
pub mod events;
pub mod forward;
pub mod hl7;
pub mod hub;
pub mod ids;
pub mod log;
pub mod mllp;
pub mod net;
pub mod operator;
pub mod projections;
pub mod retention;
pub mod security;
pub mod storage_hook;
pub mod sync;
pub mod syslog;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod tls_words;
