//! TLS for everything that speaks it: the edge's server identity shared by every TLS listener
//! (MLLP, DICOM, HTTPS), the handshake under a deadline, and the checks of TLS files the sync's
//! client certificate uses too.
//!
//! * [`files`] reads PEM files and checks them (parseable, the edge's certificate X.509 v3
//!   and valid now, the key its own, CRLs parseable), each problem naming its config key and
//!   file, so that nothing fails later inside rustls or ureq.
//! * [`ServerTls`] is the `[tls]` identity as rustls configurations: one that requires a
//!   client certificate issued by `tls.client_ca` and not revoked by `tls.crl` (MLLP and
//!   DICOM), one that verifies a client certificate only when one is presented (HTTPS).
//!   TLS 1.2 and 1.3 only, ring's cipher suites only.
//! * [`TlsSwitch`] holds the identity in use: a reload (SIGHUP) reads and checks the files
//!   again and replaces it only if all of them are usable. Each connection takes the identity
//!   current at its accept; connections already open keep theirs.
//! * [`Handshaker`] runs one connection's handshake under `tls.handshake_timeout` (a client
//!   that connects and stalls, or trickles its ClientHello, is cut then; meanwhile rustls reads
//!   into a buffer of at most 64 KiB, its limit for one handshake message), takes the peer's
//!   [`crate::security::PeerIdentity`] from the verified certificate, and raises a security
//!   alert for every refused handshake.
//!
//! One crypto provider, ring ([`provider`]): aws-lc is never compiled in (`cargo tree -i
//! aws-lc-rs` is empty), and every configuration names its provider instead of relying on a
//! process default.

mod accept;
pub mod files;
mod server;
mod switch;

use std::sync::Arc;

pub use accept::Handshaker;
pub use files::CertError;
pub use server::ServerTls;
pub use switch::TlsSwitch;

/// ring, the one crypto provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process's default rustls provider unless one is installed already
/// (for code that builds a configuration without naming its provider).
pub fn install_crypto_provider() {
    // Err means a provider is installed already: fine either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
pub(crate) mod test_certs;
