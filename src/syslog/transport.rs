//! Getting messages to the collector: one UDP datagram each, or octet-counted frames on a TLS
//! connection kept open between batches.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::SyslogTarget;

/// Connecting, the handshake and each batch's write must finish within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest UDP payload; a longer message cannot go as one datagram and is cut.
const MAX_DATAGRAM: usize = 65_507;

/// An open way to the collector.
#[derive(Debug)]
pub(super) enum Connection {
    Udp(UdpSocket),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The rustls client configuration of `tls://`: the roots the collector's certificate must
/// chain to and this edge's certificate (the sync's).
pub fn client_config(tls: &crate::sync::tls::ClientTls) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for root in &tls.roots {
        roots.add(root.clone())?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())?;
    Ok(Arc::new(config))
}

/// Sends `messages` in order, opening the connection first if needed.
pub(super) async fn send(
    connection: &mut Option<Connection>,
    target: &SyslogTarget,
    tls: Option<&Arc<rustls::ClientConfig>>,
    messages: &[Vec<u8>],
) -> Result<(), String> {
    if connection.is_none() {
        *connection = Some(connect(target, tls).await?);
    }
    let sent = match connection.as_mut().expect("just connected") {
        Connection::Udp(socket) => {
            for message in messages {
                let datagram = &message[..message.len().min(MAX_DATAGRAM)];
                socket.send(datagram).await.map_err(|e| format!("UDP send: {e}"))?;
            }
            Ok(())
        }
        Connection::Tls(stream) => {
            let frames: Vec<u8> = messages.iter().flat_map(|m| crate::audit::syslog::octet_counted(m)).collect();
            let write = async {
                stream.write_all(&frames).await?;
                stream.flush().await
            };
            match tokio::time::timeout(TIMEOUT, write).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("TLS write: {e}")),
                Err(_) => Err(format!("TLS write not done within {TIMEOUT:?}")),
            }
        }
    };
    if sent.is_err() {
        *connection = None;
    }
    sent
}

async fn connect(target: &SyslogTarget, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Connection, String> {
    let address = target.address();
    match target {
        SyslogTarget::Udp { .. } => {
            let resolved = tokio::net::lookup_host(&address)
                .await
                .map_err(|e| format!("cannot resolve {address}: {e}"))?
                .next()
                .ok_or_else(|| format!("{address} resolves to nothing"))?;
            let local = if resolved.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(local).await.map_err(|e| format!("UDP socket: {e}"))?;
            socket.connect(resolved).await.map_err(|e| format!("UDP connect {address}: {e}"))?;
            Ok(Connection::Udp(socket))
        }
        SyslogTarget::Tls { host, .. } => {
            let config = tls.ok_or("tls:// without the sync's TLS identity")?.clone();
            let name = ServerName::try_from(host.clone()).map_err(|e| format!("server name {host:?}: {e}"))?;
            let open = async {
                let tcp = TcpStream::connect(&address).await.map_err(|e| format!("connect {address}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {address}: {}", crate::tls_words::describe_io(&e)))
            };
            match tokio::time::timeout(TIMEOUT, open).await {
                Ok(Ok(stream)) => Ok(Connection::Tls(Box::new(stream))),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("connecting to {address} took over {TIMEOUT:?}")),
            }
        }
    }
}
