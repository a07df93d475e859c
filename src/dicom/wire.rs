//! Upper-layer PDUs on the socket (PS3.8 9.3): dicom-ul's codec for the bytes, our own
//! bounds and timeouts around it.
//!
//! dicom-ul parses a PDU from a buffer but does not decide how much to buffer. Here a PDU
//! is read only once its 6-byte header said how long it is and that length is within the
//! limit for the association's state (the negotiated maximum for P-DATA, a fixed bound for
//! the A-ASSOCIATE-RQ), so a peer cannot make us buffer more than that. Reads re-arm
//! `TCP_QUICKACK` (see [`crate::net`]).
//!
//! Two clocks bound the time a peer can hold an association: `read_timeout` for each read
//! (the peer went quiet) and `pdu_timeout` for each PDU from its first byte (the peer
//! trickles: every byte would reset the read timeout, and a PDU of the full negotiated
//! length sent a byte a second would hold the association for days).

use std::time::Duration;

use bytes::{Buf, BytesMut};
use dicom_ul::pdu::{Pdu, read_pdu, write_pdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::net::Stream;

/// PDU header: type (1), reserved (1), length (4, big endian).
const HEADER: usize = 6;

/// Why the connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("peer closed the connection")]
    Closed,
    #[error("no PDU within {0:?}")]
    Timeout(Duration),
    #[error("PDU not complete within {0:?} of its first byte")]
    PduTimeout(Duration),
    #[error("PDU of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: u64, limit: u32 },
    #[error("malformed PDU: {0}")]
    Malformed(String),
    /// A TLS handshake record where a PDU should start: a peer configured for DICOM over TLS
    /// (`dicom.tls_listen`) calling the plain port. No PDU type is 0x16, so this is never a
    /// guess.
    #[error("TLS handshake on a plain DICOM port (is the modality configured for TLS? dicom.tls_listen)")]
    Tls,
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// One association's socket (plain TCP, tuned by the accept loop, or TLS over it).
#[derive(Debug)]
pub struct Wire<S> {
    stream: S,
    buf: BytesMut,
    read_timeout: Duration,
    /// The longest one PDU may take to arrive, from its first byte.
    pdu_timeout: Duration,
    write_timeout: Duration,
    out: Vec<u8>,
}

impl<S: Stream> Wire<S> {
    pub fn new(stream: S, read_timeout: Duration, pdu_timeout: Duration, write_timeout: Duration) -> Wire<S> {
        Wire {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            read_timeout,
            pdu_timeout,
            write_timeout,
            out: Vec::with_capacity(1024),
        }
    }

    /// The next PDU whose length field is at most `limit`.
    pub async fn read(&mut self, limit: u32) -> Result<Pdu, WireError> {
        // Starts with the PDU's first byte (already buffered, or the next one read).
        let mut deadline = None;
        loop {
            if deadline.is_none() && !self.buf.is_empty() {
                deadline = Some(Instant::now() + self.pdu_timeout);
            }
            // A TLS record of type handshake (22), protocol major version 3.
            if self.buf.starts_with(&[0x16, 0x03]) {
                return Err(WireError::Tls);
            }
            if self.buf.len() >= HEADER {
                let len = u32::from_be_bytes([self.buf[2], self.buf[3], self.buf[4], self.buf[5]]);
                if len > limit {
                    return Err(WireError::TooLarge { len: len.into(), limit });
                }
                let total = HEADER + len as usize;
                if self.buf.len() >= total {
                    // read_pdu wants a valid max (>= its minimum); the length is checked above.
                    let max = limit.max(dicom_ul::pdu::MINIMUM_PDU_SIZE);
                    let pdu = read_pdu(&self.buf[..total], max, false)
                        .map_err(|e| WireError::Malformed(e.to_string()))?
                        .ok_or_else(|| WireError::Malformed("incomplete PDU".into()))?;
                    self.buf.advance(total);
                    return Ok(pdu);
                }
                self.buf.reserve(total - self.buf.len());
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads more bytes within `read_timeout` and before the PDU's `deadline`.
    async fn fill(&mut self, deadline: Option<Instant>) -> Result<(), WireError> {
        let now = Instant::now();
        let (wait, error) = match deadline {
            Some(d) if d.saturating_duration_since(now) <= self.read_timeout => {
                (d.saturating_duration_since(now), WireError::PduTimeout(self.pdu_timeout))
            }
            _ => (self.read_timeout, WireError::Timeout(self.read_timeout)),
        };
        // Checked before reading too: a peer sending without pause never lets a read time out.
        if wait.is_zero() {
            return Err(error);
        }
        match tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(error),
            Ok(Ok(0)) => Err(WireError::Closed),
            Ok(Ok(_)) => {
                self.stream.after_read();
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Ends the connection: over TLS, the peer learns it ended on purpose (close_notify).
    pub async fn close(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
    }

    /// Writes one PDU.
    pub async fn write(&mut self, pdu: &Pdu) -> Result<(), WireError> {
        self.out.clear();
        write_pdu(&mut self.out, pdu).map_err(|e| WireError::Malformed(e.to_string()))?;
        // TLS holds written bytes until flushed; plain TCP flushes nothing.
        let sent = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.write_timeout, sent).await {
            Err(_) => Err(WireError::Timeout(self.write_timeout)),
            Ok(result) => Ok(result?),
        }
    }
}
