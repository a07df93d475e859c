//! An MLLP client for tests: one message in flight, frames decoded with the daemon's codec.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use zenedge::mllp::codec::{Frame, MllpCodec};

pub struct MllpClient {
    pub stream: TcpStream,
    codec: MllpCodec,
    buf: BytesMut,
}

/// `0x0B payload 0x1C 0x0D`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(0x0b);
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0x1c, 0x0d]);
    out
}

impl MllpClient {
    pub async fn connect(addr: SocketAddr) -> MllpClient {
        let stream = TcpStream::connect(addr).await.expect("connect to MLLP");
        stream.set_nodelay(true).unwrap();
        MllpClient { stream, codec: MllpCodec::new(64 << 20), buf: BytesMut::new() }
    }

    /// Sends one message and returns the acknowledgement's payload.
    pub async fn send(&mut self, message: &[u8]) -> Vec<u8> {
        self.write(&frame(message)).await;
        self.read_ack().await.expect("an acknowledgement")
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes; `false` if the daemon is gone.
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next acknowledgement, or `None` if the daemon closed the connection.
    pub async fn read_ack(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(Frame::Message(payload)) = self.codec.decode(&mut self.buf).expect("valid ACK frame") {
                return Some(payload.to_vec());
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}
