//! DICOM: the C-ECHO and C-STORE SCP modalities send studies to, and the modality worklist
//! (C-FIND) they take their orders from.
//!
//! * [`negotiate`] decides associations (AE titles, presentation contexts, transfer syntax);
//! * [`sop_class`] says what a SOP class is (storage or not) by its UID;
//! * [`wire`] reads and writes upper-layer PDUs with bounds and timeouts;
//! * [`dimse`] reads and writes command sets;
//! * [`association`] runs one association: commands, data sets streamed to [`spool`], the
//!   answer after the log's commit;
//! * [`flush`] makes the instances of all associations durable together: one `syncfs` and one
//!   commit per batch; [`orphans`] removes at start-up the files a crash left in place
//!   unrecorded;
//! * the identifiers of a received data set are read by [`crate::dicom_scan`], a parser of
//!   its own (no I/O), without trusting its lengths;
//! * [`stability`] completes studies when their instances stop coming;
//! * [`worklist`] answers the modality worklist's C-FIND from the worklist projection;
//! * [`server`] accepts associations under a limit ([`crate::net::accept_loop`]), plain and
//!   over TLS (the association then carries the peer's certificate identity).

mod association;
pub mod commitment;
pub mod dimse;
pub mod flush;
pub mod gate;
pub mod negotiate;
pub mod orphans;
mod refusals;
mod server;
pub mod sop_class;
pub mod spool;
pub mod stability;
mod wire;
pub mod worklist;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use flush::Flusher;
pub use gate::InstanceGate;
pub use server::{serve, serve_tls};
pub use spool::Layout;
pub use stability::Stability;

use crate::config::DicomConfig;
use crate::log::{DiskGuard, LogHandle, LogReader};
use crate::projections::Projections;
use crate::security::Alerts;
use crate::telemetry::Metrics;

/// What every association shares.
#[derive(Debug)]
pub struct DicomContext {
    pub config: DicomConfig,
    pub log: LogHandle<Projections>,
    /// The worklist's reads.
    pub reader: LogReader,
    /// This edge, as its audit records name it.
    pub edge_id: String,
    pub metrics: Arc<Metrics>,
    /// A spoofed calling AE title is reported here.
    pub alerts: Alerts,
    /// Checked before an instance is received: below the reserve it is refused (0xA700).
    pub disk: DiskGuard,
    pub layout: Layout,
    /// Makes finished instances durable together and records them ([`flush`]).
    pub flusher: Flusher,
    pub stability: Stability,
    /// Cancelled at shutdown: idle associations are aborted.
    pub shutdown: CancellationToken,
}
