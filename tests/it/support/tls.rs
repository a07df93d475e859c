//! The TLS side of the intake tests: a daemon's `[tls]` identity from the test PKI, the
//! clients that talk to it (python's `ssl` module around an MLLP client, DCMTK, curl), and
//! the security alert counter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::certs::{Leaf, TestPki, Usage};

/// The edge's TLS files: a PKI, the server certificate and key, and client certificates made
/// on demand, in a temp directory that lives as long as this value.
pub struct EdgeTls {
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl EdgeTls {
    /// A server certificate for `localhost`/`127.0.0.1` with an ECDSA key.
    pub fn new() -> EdgeTls {
        EdgeTls::with_server(Leaf::server())
    }

    /// A server certificate with an RSA key: what DCMTK's default profile needs over TLS
    /// 1.2 (and works over 1.3); needs the `openssl` command.
    pub fn rsa() -> EdgeTls {
        EdgeTls::with_server(Leaf { stem: "server-rsa".into(), rsa: true, ..Leaf::server() })
    }

    pub fn with_server(leaf: Leaf) -> EdgeTls {
        let (pki, dir) = (TestPki::new(), tempfile::tempdir().unwrap());
        let (cert, key) = pki.issue(dir.path(), &leaf);
        EdgeTls { pki, dir, cert, key }
    }

    /// The `[tls]` section naming these files (and `extra` lines).
    pub fn section(&self, extra: &str) -> String {
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n{extra}",
            self.cert.display().to_string(),
            self.key.display().to_string(),
            self.pki.ca_path().display().to_string(),
        )
    }

    /// A client certificate from the trusted CA with common name `cn` (and the DNS name `cn`).
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.pki.issue(self.dir.path(), &Leaf { stem: format!("client-{cn}"), ..Leaf::client(cn) })
    }

    /// A client certificate issued by `leaf` (stem, names, issuer, expiry as it says).
    pub fn issue(&self, leaf: &Leaf) -> (PathBuf, PathBuf) {
        assert_eq!(leaf.usage, Usage::Client);
        self.pki.issue(self.dir.path(), leaf)
    }

    pub fn ca(&self) -> PathBuf {
        self.pki.ca_path()
    }
}

/// A tool on `PATH`, or `None` with the reason printed (the test then passes, skipped).
pub fn tool(name: &str, why: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        println!("skipping: {name} is not installed ({why})");
    }
    found
}

/// An MLLP client in python (`ssl.create_default_context` trusting the CA, the client
/// certificate if given, SNI `localhost`): sends the message on stdin in one frame, prints the
/// ACK's payload. Exit 2 with the `ssl` error on stderr when the handshake or the read fails.
const PYTHON_MLLP_CLIENT: &str = r#"
import socket, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
if len(sys.argv) > 5:
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
message = sys.stdin.buffer.read()
try:
    with socket.create_connection((host, port), timeout=20) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"\x0b" + message + b"\x1c\r")
            answer = b""
            while not answer.endswith(b"\x1c\r"):
                chunk = tls.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the ACK")
                answer += chunk
except (ssl.SSLError, ConnectionError, OSError) as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)
sys.stdout.buffer.write(answer.strip(b"\x0b\x1c\r"))
"#;

/// Sends `message` over MLLP inside TLS with python's `ssl` module: the ACK, or the client's
/// error (`None` for the whole thing when python is not installed: the caller skips).
pub async fn python_mllp(
    addr: SocketAddr,
    ca: &Path,
    client: Option<&(PathBuf, PathBuf)>,
    message: &[u8],
) -> Option<Result<Vec<u8>, String>> {
    let python = tool("python3", "the MLLP-over-TLS client is python's ssl module")?;
    let mut command = Command::new(python);
    command.arg("-c").arg(PYTHON_MLLP_CLIENT).arg(addr.ip().to_string()).arg(addr.port().to_string()).arg(ca);
    if let Some((cert, key)) = client {
        command.arg(cert).arg(key);
    }
    let message = message.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(&message).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    Some(if out.status.success() { Ok(out.stdout) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) })
}

/// `zenedge_security_alerts_total{kind}` as the daemon at `http` counts it (0 before the
/// first).
pub async fn alerts(http: SocketAddr, kind: &str) -> u64 {
    let text = super::http::get(http, "/metrics").await.body;
    let prefix = format!("zenedge_security_alerts_total{{kind=\"{kind}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |n| n.trim().parse().unwrap())
}

/// An MLLP client over TLS (rustls), for what python cannot show: the server certificate the
/// daemon presented, and a connection kept open across a reload.
pub struct TlsMllpClient {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    /// SHA-256 of the certificate the daemon presented, lower-case hex.
    pub server_fingerprint: String,
    buf: bytes::BytesMut,
}

impl TlsMllpClient {
    /// Connects to `addr` trusting `ca`, with the client certificate `client`.
    pub async fn connect(addr: SocketAddr, ca: &Path, client: &(PathBuf, PathBuf)) -> std::io::Result<TlsMllpClient> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(&client.0).unwrap()],
                PrivateKeyDer::from_pem_file(&client.1).unwrap(),
            )
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let stream = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        let server_fingerprint = {
            use sha2::Digest;
            let cert = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
            sha2::Sha256::digest(&cert).iter().map(|b| format!("{b:02x}")).collect()
        };
        Ok(TlsMllpClient { stream, server_fingerprint, buf: bytes::BytesMut::new() })
    }

    /// Sends one message; its ACK's payload, or `None` if the connection ended first.
    pub async fn send(&mut self, message: &[u8]) -> Option<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_util::codec::Decoder;
        use zenedge::mllp::codec::{Frame, MllpCodec};
        self.stream.write_all(&super::mllp::frame(message)).await.ok()?;
        self.stream.flush().await.ok()?;
        let mut codec = MllpCodec::new(1 << 20);
        loop {
            if let Ok(Some(Frame::Message(payload))) = codec.decode(&mut self.buf) {
                return Some(payload.to_vec());
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}
