//! One MLLP connection: frames in, acknowledgements out, one message in flight. Reading a
//! frame (timeouts, the foreign-protocol sniff) is here; what a frame is answered with is
//! [`super::message`].
//!
//! Latency with real senders: most interface engines leave Nagle's algorithm on and write a
//! frame in several pieces. The second piece then waits for the receiver's TCP ACK of the
//! first, which Linux delays up to 40 ms. We set `TCP_NODELAY` (our ACK leaves at once) and
//! re-arm `TCP_QUICKACK` after every read (the kernel clears it again by itself), so such a
//! sender is never stalled by us.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use super::codec::{CodecError, Frame, MllpCodec, encode_frame};
use super::context::MllpContext;
use super::message::Messages;
use crate::net::Stream;
use crate::security::PeerIdentity;

/// Initial read buffer; grows up to the frame limit only for large messages.
const READ_CHUNK: usize = 16 * 1024;
/// How long closing a connection may wait for the peer to take our last bytes.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long a `0x1C` that ended a read waits for its `0x0D` before it is taken as the end
/// of the frame anyway (some senders leave the `0x0D` out; a stray `0x1C` inside a message
/// is told apart by the byte after it).
const END_BLOCK_GRACE: Duration = Duration::from_millis(100);

/// How reading the next frame ended.
enum Input {
    Frame(Frame),
    /// The peer closed, timed out, or shutdown began with no frame pending.
    Closed,
}

pub(super) struct Connection<'a, S> {
    stream: S,
    peer: SocketAddr,
    /// The client certificate of a TLS connection, taken at its handshake.
    identity: Option<PeerIdentity>,
    ctx: &'a MllpContext,
    codec: MllpCodec,
    buf: BytesMut,
    /// The first bytes have been checked for a foreign protocol.
    sniffed: bool,
}

impl<'a, S: Stream> Connection<'a, S> {
    /// A connection on `stream` (plain, already tuned by the accept loop, or TLS after its
    /// handshake) from `peer` with `identity`.
    pub fn new(stream: S, peer: SocketAddr, identity: Option<PeerIdentity>, ctx: &'a MllpContext) -> Self {
        Connection {
            stream,
            peer,
            identity,
            ctx,
            codec: MllpCodec::new(ctx.config.max_message_bytes),
            buf: BytesMut::with_capacity(READ_CHUNK),
            sniffed: false,
        }
    }

    /// Serves the connection until the peer leaves, it idles out, or shutdown.
    pub async fn run(mut self) {
        tracing::debug!(peer = %self.peer, "MLLP connection opened");
        let ctx = self.ctx;
        loop {
            let input = tokio::select! {
                biased;
                input = self.next_frame() => input,
                _ = ctx.shutdown.cancelled() => Input::Closed,
            };
            let Input::Frame(frame) = input else { break };
            let messages = Messages { ctx, peer: self.peer, identity: self.identity.as_ref() };
            let answer = match frame {
                Frame::Message(payload) => messages.handle(payload).await,
                Frame::Oversized { head, len } => messages.oversized(&head, len),
                Frame::Malformed { head, len } => messages.malformed(&head, len),
            };
            if let Some(ack) = answer {
                let mut out = BytesMut::with_capacity(ack.len() + 3);
                encode_frame(&ack, &mut out);
                // TLS holds written bytes until flushed; plain TCP flushes nothing.
                let sent = async {
                    self.stream.write_all(&out).await?;
                    self.stream.flush().await
                };
                if let Err(e) = sent.await {
                    tracing::debug!(peer = %self.peer, error = %e, "MLLP write failed");
                    break;
                }
            }
        }
        // Over TLS, the peer learns the connection ended on purpose (close_notify).
        let _ = tokio::time::timeout(CLOSE_GRACE, self.stream.shutdown()).await;
        let skipped = self.codec.skipped_bytes();
        if skipped > 0 {
            self.ctx.metrics.mllp_bytes_skipped.inc_by(skipped);
        }
        tracing::debug!(peer = %self.peer, "MLLP connection closed");
    }

    /// Reads until a whole frame is buffered, the peer closes, the idle timeout passes, or
    /// the frame in progress is not complete within `frame_timeout`.
    ///
    /// The idle timeout runs per read, so a sender trickling a byte at a time resets it
    /// forever; the frame deadline is what ends such a connection. It starts at the first
    /// byte after the previous frame other than the CR/LF some senders put between frames
    /// (a start block, or junk), so junk trickled between frames is bounded too.
    async fn next_frame(&mut self) -> Input {
        let idle: Duration = self.ctx.config.idle_timeout;
        let mut deadline: Option<Instant> = None;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => return Input::Frame(frame),
                Ok(None) => {}
                Err(e) => {
                    self.reject("codec", &e);
                    return Input::Closed;
                }
            }
            if deadline.is_none() && self.codec.in_frame() {
                deadline = Some(Instant::now() + self.ctx.config.frame_timeout);
            }
            let pending = self.codec.end_block_pending();
            // Checked before reading too: a sender streaming without pause never lets a read
            // time out.
            if !pending && deadline.is_some_and(|d| Instant::now() >= d) {
                return self.frame_timed_out();
            }
            let wait = if pending { END_BLOCK_GRACE } else { idle };
            let wait = deadline.map_or(wait, |d| wait.min(d.saturating_duration_since(Instant::now())));
            let before = self.buf.len();
            let read = tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await;
            match read {
                Ok(Ok(0)) => return self.at_eof(),
                Ok(Ok(_)) => {
                    self.stream.after_read();
                    if !std::mem::replace(&mut self.sniffed, true)
                        && let Some(protocol) = foreign_protocol(&self.buf)
                    {
                        self.ctx.metrics.frame_rejected(protocol.metric);
                        tracing::warn!(peer = %self.peer, "{}; closing the connection", protocol.text);
                        return Input::Closed;
                    }
                    if deadline.is_none() && self.buf[before..].iter().any(|&b| b != b'\r' && b != b'\n') {
                        deadline = Some(Instant::now() + self.ctx.config.frame_timeout);
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "MLLP read failed");
                    return Input::Closed;
                }
                Err(_) if pending => {
                    if let Some(frame) = self.codec.finish_pending(&mut self.buf) {
                        return Input::Frame(frame);
                    }
                }
                Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => return self.frame_timed_out(),
                Err(_) => {
                    tracing::info!(peer = %self.peer, idle_timeout = ?idle, "closing idle MLLP connection");
                    return Input::Closed;
                }
            }
        }
    }

    fn frame_timed_out(&self) -> Input {
        let frame_timeout = self.ctx.config.frame_timeout;
        self.ctx.metrics.frame_rejected("frame_timeout");
        tracing::warn!(peer = %self.peer, ?frame_timeout, "MLLP frame not complete within the frame timeout; closing the connection");
        Input::Closed
    }

    fn at_eof(&mut self) -> Input {
        match self.codec.decode_eof(&mut self.buf) {
            Ok(Some(frame)) => Input::Frame(frame),
            Ok(None) => Input::Closed,
            Err(e) => {
                self.reject("truncated", &e);
                Input::Closed
            }
        }
    }

    fn reject(&self, reason: &str, error: &CodecError) {
        self.ctx.metrics.frame_rejected(reason);
        tracing::warn!(peer = %self.peer, error = %error, "MLLP input rejected");
    }
}

/// A protocol other than MLLP, recognised by a connection's first bytes.
struct Foreign {
    metric: &'static str,
    text: &'static str,
}

/// TLS or HTTP on the plain MLLP port: a misconfigured sender (or a scanner). Closing at
/// once tells it more than waiting for a start block that never comes.
fn foreign_protocol(first: &[u8]) -> Option<Foreign> {
    const HTTP_METHODS: [&[u8]; 6] = [b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"CONNECT "];
    // A TLS record of type handshake (22), protocol major version 3.
    if first.starts_with(&[0x16, 0x03]) {
        let text = "TLS handshake on the plain MLLP port (is the sender configured for TLS?)";
        return Some(Foreign { metric: "tls_on_plain_port", text });
    }
    if HTTP_METHODS.iter().any(|m| first.starts_with(m)) {
        return Some(Foreign { metric: "http_on_mllp_port", text: "HTTP request on the MLLP port" });
    }
    None
}
