//! Serving the routes over plain HTTP or HTTPS, through one accept loop of our own (TCP
//! accept → for HTTPS, the TLS handshake under a deadline and the client certificate →
//! hyper's HTTP/1.1 server with a header read timeout).
//!
//! Why hand-written: `axum::serve` speaks plain TCP only and sets no header read timeout,
//! and axum-server's `tls-rustls` feature pulls in aws-lc (a second crypto provider and its
//! long build) where the project is ring-only. The loop is small: [`crate::net::accept_loop`]
//! caps connections, `tokio_rustls` does the handshake, hyper runs the router with the peer's
//! [`EdgeIdentity`] as a request extension. Slow clients: the headers of each request must
//! arrive within `header_timeout` (the connection is closed otherwise) and a batch's body
//! within `body_timeout` ([`super::receive`], `408`), so a client that trickles bytes holds
//! one connection slot for a bounded time and at most the body limit of memory.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Extension;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{EdgeIdentity, HubError, HubOptions, HubStore, HubTls, router};

/// A TLS handshake must finish within this time, so a client that connects and stalls cannot
/// hold a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// After shutdown begins, requests in flight get this long to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Installs ring as the process's rustls crypto provider unless one is installed already.
pub fn install_crypto_provider() {
    // Err means a provider is installed already: fine either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Loads the server certificate chain and key, and the client CA if any, into a rustls
/// configuration (TLS 1.2 and 1.3, ring, HTTP/1.1). Every problem names its file.
pub fn tls_config(tls: &HubTls) -> Result<Arc<rustls::ServerConfig>, HubError> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certificates(&tls.cert, "certificate")?;
    warn_if_not_valid_now(&tls.cert, &chain[0]);
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        HubError::tls(&tls.key, format!("no usable private key (PEM, PKCS#8, PKCS#1 or SEC1): {}", pem_problem(e)))
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::tls(&tls.cert, e.to_string()))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certificates(ca, "CA certificate")? {
                roots.add(cert).map_err(|e| HubError::tls(ca, format!("not a usable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| HubError::tls(ca, format!("cannot verify client certificates with it: {e}")))?;
            tracing::info!(client_ca = %ca.display(), "client certificates required");
            builder.with_client_cert_verifier(verifier)
        }
        None => {
            tracing::warn!("no client CA: edges are not authenticated and any client may write any edge's stream");
            builder.with_no_client_auth()
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        let problem = crate::tls_words::describe(&e);
        HubError::tls(
            &tls.key,
            format!("is not the private key of the certificate in {} ({problem})", tls.cert.display()),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, each checked to be X.509; at least one.
fn load_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, HubError> {
    let pem = fs::read(path).map_err(|e| HubError::tls(path, format!("cannot read the {what} file: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HubError::tls(path, format!("not a PEM {what} file: {}", pem_problem(e))))?;
    if chain.is_empty() {
        return Err(HubError::tls(path, format!("holds no {what} (expected -----BEGIN CERTIFICATE-----)")));
    }
    for (i, cert) in chain.iter().enumerate() {
        x509_parser::parse_x509_certificate(cert)
            .map_err(|e| HubError::tls(path, format!("certificate {} is not valid X.509: {e}", i + 1)))?;
    }
    Ok(chain)
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM section of that kind found".to_owned(),
        other => format!("{other:?}"),
    }
}

/// An expired (or not yet valid) server certificate still loads, so that a hub can be started
/// to test how edges refuse it, but the operator is told.
fn warn_if_not_valid_now(path: &Path, cert: &CertificateDer<'_>) {
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert)
        && !parsed.validity().is_valid()
    {
        tracing::warn!(
            certificate = %path.display(),
            not_before = %parsed.validity().not_before,
            not_after = %parsed.validity().not_after,
            "the hub's certificate is not valid now: edges will refuse it"
        );
    }
}

/// Serves the hub on `listener` until `shutdown`, then lets requests in flight finish for up
/// to [`SHUTDOWN_GRACE`] (after which they are dropped). Idle connections are closed at once.
/// With `tls`, every connection is HTTPS and a client certificate, if the configuration asks
/// for one, names the only edge the connection may touch.
pub async fn serve(
    listener: TcpListener,
    store: HubStore,
    options: HubOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let app = router(store, options);
    let tracker = TaskTracker::new();
    let header_timeout = options.header_timeout;
    match tls {
        None => {
            tracing::warn!(%address, "hub is serving plain HTTP: edges are not authenticated");
            tracing::info!(%address, tls = "off", client_auth = "off", "hub is listening");
            crate::net::accept_loop(
                listener,
                MAX_CONNECTIONS,
                shutdown.clone(),
                tracker.clone(),
                "hub",
                |stream, peer| {
                    crate::net::tune(&stream);
                    serve_http(TokioIo::new(stream), peer, app.clone(), header_timeout, shutdown.clone())
                },
            )
            .await;
        }
        Some(tls) => {
            tracing::info!(%address, tls = "on", "hub is listening");
            let acceptor = TlsAcceptor::from(tls);
            crate::net::accept_loop(
                listener,
                MAX_CONNECTIONS,
                shutdown.clone(),
                tracker.clone(),
                "hub",
                |stream, peer| {
                    serve_tls_connection(stream, peer, acceptor.clone(), app.clone(), header_timeout, shutdown.clone())
                },
            )
            .await;
        }
    }
    tracker.close();
    // Every connection task ends within its grace period (see `serve_http`).
    tracker.wait().await;
    Ok(())
}

/// One HTTPS connection: handshake under [`HANDSHAKE_TIMEOUT`], the peer's identity from its
/// certificate, then HTTP/1.1 until the client closes or shutdown.
async fn serve_tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    crate::net::tune(&stream);
    let handshake = tokio::select! {
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => result,
        _ = shutdown.cancelled() => return,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!(%peer, reason = %crate::tls_words::describe_io(&e), "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake not finished in time: connection closed");
            return;
        }
    };
    let identity =
        tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|cert| EdgeIdentity::from_der(cert));
    if let Some(identity) = &identity {
        tracing::debug!(%peer, edge = identity.name(), "edge connected");
    }
    let app = match identity {
        Some(identity) => app.layer(Extension(identity)),
        None => app,
    };
    serve_http(TokioIo::new(tls), peer, app, header_timeout, shutdown).await;
}

/// HTTP/1.1 on one connection until the client closes it or shutdown; headers must arrive
/// within `header_timeout`.
async fn serve_http<I>(
    io: TokioIo<I>,
    peer: SocketAddr,
    app: axum::Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.cancelled() => {
            // Idle connections close now; a request in flight gets the grace period.
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(%peer, grace = ?SHUTDOWN_GRACE, "request still running after the grace period: dropped");
                    return;
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "hub connection ended with an error");
    }
}
