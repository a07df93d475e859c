//! Test support: an in-process daemon on port 0, an MLLP client, HL7 builders, HTTP GET, an
//! SSE client, a throw-away PKI and the TLS clients (python's ssl, rustls) for the TLS tests,
//! the real binary with its log in a file, a fault-injecting TCP proxy, mounts and libfiu for
//! operating-system faults, and the hub's two stores (redb, a real PostgreSQL).

pub mod access;
pub mod acked;
pub mod certs;
pub mod config;
pub mod daemon;
pub mod dataset;
pub mod eventually;
pub mod hl7msg;
pub mod http;
pub mod hubs;
pub mod imports;
pub mod logged;
pub mod mllp;
pub mod orthanc;
pub mod osfault;
pub mod postgres;
pub mod powerloss;
pub mod process;
pub mod proxy;
pub mod scu;
pub mod sse;
pub mod tls;

pub use daemon::TestDaemon;
pub use eventually::eventually;
pub use mllp::MllpClient;
