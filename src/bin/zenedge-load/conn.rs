//! One MLLP connection (plain, or TLS with `--tls-ca`): send a framed order, read the ACK
//! back, and count the outcome.

use std::io;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use zenedge::mllp::codec::{Frame, MllpCodec};

use crate::MAX_LATENCY_US;
use crate::message::{CODES, OrderWriter, parse_ack};
use crate::plan::Plan;

/// Largest ACK accepted; anything bigger is counted as a bad frame.
const MAX_ACK_BYTES: usize = 1 << 20;

/// Why one exchange got no usable ACK.
#[derive(Debug)]
pub(crate) enum Failure {
    Timeout,
    Disconnected,
    BadFrame,
}

/// A byte stream: TCP, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection with its read buffer and ACK decoder.
pub(crate) struct Conn {
    stream: Box<dyn Io>,
    codec: MllpCodec,
    buf: BytesMut,
    /// Connect (and TLS handshake) time.
    pub(crate) opened_in: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("opened_in", &self.opened_in).finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects (and runs the TLS handshake, with `--tls-ca`) within `--connect-timeout`.
    pub(crate) async fn open(plan: &Plan) -> io::Result<Self> {
        let started = Instant::now();
        let stream = tokio::time::timeout(plan.connect_timeout, Conn::connect(plan))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let (codec, buf) = (MllpCodec::new(MAX_ACK_BYTES), BytesMut::with_capacity(4096));
        Ok(Self { stream, codec, buf, opened_in: started.elapsed() })
    }

    async fn connect(plan: &Plan) -> io::Result<Box<dyn Io>> {
        let stream = TcpStream::connect(plan.addr).await?;
        stream.set_nodelay(!plan.nagle)?;
        Ok(match &plan.tls {
            None => Box::new(stream),
            Some(tls) => Box::new(tls.connector.connect(tls.name.clone(), stream).await?),
        })
    }

    /// Sends one framed message and waits for the next frame back.
    pub(crate) async fn exchange(&mut self, order: &OrderWriter, nagle: bool) -> Result<Bytes, Failure> {
        let write = async {
            if nagle {
                for part in order.nagle_parts() {
                    self.stream.write_all(part).await?;
                }
            } else {
                self.stream.write_all(&order.frame).await?;
            }
            // TLS holds written bytes until flushed; TCP flushes nothing.
            self.stream.flush().await
        };
        write.await.map_err(|_| Failure::Disconnected)?;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(Frame::Message(payload))) => return Ok(payload),
                Ok(Some(Frame::Oversized { .. } | Frame::Malformed { .. })) | Err(_) => return Err(Failure::BadFrame),
                Ok(None) => {}
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(Failure::Disconnected),
                Ok(_) => {}
            }
        }
    }
}

/// Counters of one connection, summed into the report.
#[derive(Debug)]
pub(crate) struct ConnStats {
    /// Messages sent before the measured phase; they count in nothing below but `acked`.
    pub(crate) warmup_sent: u64,
    /// Warmup messages without a positive ACK (any reason).
    pub(crate) warmup_failed: u64,
    pub(crate) sent: u64,
    /// ACKs by MSA-1, in `CODES` order, then "other".
    pub(crate) codes: [u64; 7],
    /// ACKs whose MSA-2 is not the MSH-10 just sent: a receiver answering the wrong message.
    pub(crate) msa2_mismatch: u64,
    /// ACKs whose MSH-9 is not `ACK...`.
    pub(crate) not_ack_type: u64,
    /// No complete ACK within `--timeout`.
    pub(crate) timeouts: u64,
    /// The receiver closed or reset the connection, or a write failed.
    pub(crate) disconnects: u64,
    /// An ACK frame without an MSA segment, or larger than `MAX_ACK_BYTES`.
    pub(crate) bad_frames: u64,
    /// Connections reopened after a failure.
    pub(crate) reconnects: u64,
    /// Reopening failed; the connection's sender stopped.
    pub(crate) reconnect_failures: u64,
    /// Paced sends that started more than `LATE_AFTER` behind their slot.
    pub(crate) late_sends: u64,
    /// ACK latency of measured messages, microseconds.
    pub(crate) latency_us: Histogram<u64>,
    /// Connect (and TLS handshake) time of every connection opened, microseconds.
    pub(crate) open_us: Histogram<u64>,
    /// First measured write and last measured ACK: the span throughput is computed over.
    pub(crate) first_send: Option<Instant>,
    pub(crate) last_ack: Option<Instant>,
    /// Counters of messages answered AA/CA with the right MSA-2 (for `--acked-out`).
    pub(crate) acked: Vec<u64>,
}

impl ConnStats {
    pub(crate) fn new() -> Self {
        Self {
            warmup_sent: 0,
            warmup_failed: 0,
            sent: 0,
            codes: [0; 7],
            msa2_mismatch: 0,
            not_ack_type: 0,
            timeouts: 0,
            disconnects: 0,
            bad_frames: 0,
            reconnects: 0,
            reconnect_failures: 0,
            late_sends: 0,
            latency_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("bounds"),
            open_us: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("bounds"),
            first_send: None,
            last_ack: None,
            acked: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, o: ConnStats) {
        self.warmup_sent += o.warmup_sent;
        self.warmup_failed += o.warmup_failed;
        self.sent += o.sent;
        for (a, b) in self.codes.iter_mut().zip(o.codes) {
            *a += b;
        }
        self.msa2_mismatch += o.msa2_mismatch;
        self.not_ack_type += o.not_ack_type;
        self.timeouts += o.timeouts;
        self.disconnects += o.disconnects;
        self.bad_frames += o.bad_frames;
        self.reconnects += o.reconnects;
        self.reconnect_failures += o.reconnect_failures;
        self.late_sends += o.late_sends;
        self.latency_us.add(&o.latency_us).expect("same bounds");
        self.open_us.add(&o.open_us).expect("same bounds");
        self.first_send = min_some(self.first_send, o.first_send);
        self.last_ack = self.last_ack.max(o.last_ack);
        self.acked.extend(o.acked);
    }

    /// Counts a measured exchange; returns whether it got a positive ACK for `control_id`.
    pub(crate) fn record_measured(
        &mut self,
        outcome: Result<Bytes, Failure>,
        control_id: &str,
        t_write: Instant,
        t_ack: Instant,
    ) -> bool {
        let payload = match outcome {
            Ok(payload) => payload,
            Err(Failure::Timeout) => return bump(&mut self.timeouts),
            Err(Failure::Disconnected) => return bump(&mut self.disconnects),
            Err(Failure::BadFrame) => return bump(&mut self.bad_frames),
        };
        let us = t_ack.duration_since(t_write).as_micros() as u64;
        self.latency_us.saturating_record(us.max(1));
        self.last_ack = Some(t_ack);
        let Some(ack) = parse_ack(&payload) else {
            return bump(&mut self.bad_frames);
        };
        let slot = CODES.iter().position(|c| c.as_bytes() == ack.code);
        self.codes[slot.unwrap_or(CODES.len())] += 1;
        self.not_ack_type += u64::from(!ack.is_ack_type);
        self.msa2_mismatch += u64::from(!ack.acknowledges(control_id));
        ack.is_positive_for(control_id)
    }

    /// Counts a connection opened in `took`.
    pub(crate) fn record_open(&mut self, took: Duration) {
        self.open_us.saturating_record((took.as_micros() as u64).max(1));
    }

    /// Counts a warmup exchange: only whether it was positively acknowledged.
    pub(crate) fn record_warmup(&mut self, outcome: &Result<Bytes, Failure>, control_id: &str) -> bool {
        self.warmup_sent += 1;
        let ack = outcome.as_ref().ok().and_then(|p| parse_ack(p));
        let positive = ack.is_some_and(|a| a.is_positive_for(control_id));
        self.warmup_failed += u64::from(!positive);
        positive
    }
}

/// Adds one to a counter; returns `false` (the exchange was not a positive ACK).
fn bump(counter: &mut u64) -> bool {
    *counter += 1;
    false
}

fn min_some(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
