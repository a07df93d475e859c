//! A small buffered byte source that counts what it consumes and never reads ahead of need.
//!
//! The source issues a `read` on the inner reader only when the bytes already buffered do not
//! cover the request, so a scan that stops early leaves the rest of the stream unread (beyond
//! whatever the last single `read` call happened to return). Every byte consumed is charged
//! against `max_header_bytes`; declared lengths are never used to size an allocation here.

use std::fmt;
use std::io::{self, Read};

use flate2::read::DeflateDecoder;

use super::ScanError;

/// Size of the one buffer a scan reads through.
const BUF_LEN: usize = 8 * 1024;

/// The raw stream, or an inflating view of it for the deflated transfer syntaxes.
pub(super) enum Input<R: Read> {
    Plain(R),
    /// Raw deflate (RFC 1951); the decoder's own state and input buffer are fixed-size, and
    /// what it inflates is charged against the header limit like any other byte.
    Deflated(DeflateDecoder<Upstream<R>>),
}

impl<R: Read> Input<R> {
    pub(super) fn new(reader: R, deflated: bool) -> Self {
        if deflated { Input::Deflated(DeflateDecoder::new(Upstream(reader))) } else { Input::Plain(reader) }
    }
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(r) => r.read(buf),
            Input::Deflated(d) => d.read(buf).map_err(UpstreamError::sort),
        }
    }
}

/// Wraps the inner reader's errors so they can be told apart from the inflater's own.
pub(super) struct Upstream<R>(R);

impl<R: Read> Read for Upstream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| if e.kind() == io::ErrorKind::Interrupted { e } else { io::Error::other(UpstreamError(e)) })
    }
}

#[derive(Debug)]
struct UpstreamError(io::Error);

impl UpstreamError {
    /// For an error out of the inflater: the inner reader's original error if it came from
    /// there, otherwise (the inflater raised it itself) what is wrong with the compressed bytes.
    fn sort(e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::Interrupted {
            return e;
        }
        let fault =
            if e.kind() == io::ErrorKind::UnexpectedEof { DeflateFault::Incomplete } else { DeflateFault::Corrupt };
        if e.get_ref().is_some_and(|inner| inner.is::<UpstreamError>())
            && let Some(Ok(upstream)) = e.into_inner().map(|inner| inner.downcast::<UpstreamError>())
        {
            return upstream.0;
        }
        io::Error::new(io::ErrorKind::InvalidData, fault)
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for UpstreamError {}

/// What the inflater found wrong with the compressed bytes.
#[derive(Debug, Clone, Copy)]
enum DeflateFault {
    /// Not a valid deflate stream: [`ScanError::Malformed`].
    Corrupt,
    /// The stream stops before its final block: [`ScanError::Truncated`].
    Incomplete,
}

impl fmt::Display for DeflateFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeflateFault::Corrupt => "corrupt deflate stream",
            DeflateFault::Incomplete => "incomplete deflate stream",
        })
    }
}

impl std::error::Error for DeflateFault {}

/// The buffered, limit-charging reader the walker pulls bytes from.
pub(super) struct Source<R> {
    /// Where the bytes come from.
    inner: R,
    /// Fixed-size read buffer; `buf[start..end]` is read but not yet consumed.
    buf: Box<[u8]>,
    /// First buffered byte not yet consumed.
    start: usize,
    /// One past the last buffered byte.
    end: usize,
    /// Bytes consumed so far: the offset of the next byte in the (inflated) dataset.
    pos: u64,
    /// `max_header_bytes`: consuming past this is [`ScanError::HeaderLimitExceeded`].
    limit: u64,
}

impl<R> fmt::Debug for Source<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source").field("pos", &self.pos).field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl<R: Read> Source<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        Source { inner, buf: vec![0; BUF_LEN].into_boxed_slice(), start: 0, end: 0, pos: 0, limit }
    }

    /// Offset of the next byte to be consumed.
    pub(super) fn position(&self) -> u64 {
        self.pos
    }

    /// True when the stream has no more bytes (checked without consuming anything).
    pub(super) fn at_end(&mut self) -> Result<bool, ScanError> {
        Ok(!self.ensure(1)?)
    }

    /// Consumes exactly `N` bytes (`N` ≤ a few dozen: element headers).
    pub(super) fn take<const N: usize>(&mut self) -> Result<[u8; N], ScanError> {
        self.charge(N as u64)?;
        if !self.ensure(N)? {
            return Err(ScanError::Truncated);
        }
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[self.start..self.start + N]);
        self.consume(N);
        Ok(out)
    }

    /// Consumes and discards `n` bytes.
    pub(super) fn skip(&mut self, n: u64) -> Result<(), ScanError> {
        self.transfer(n, |_| {})
    }

    /// Consumes `n` bytes, appending them to `out`. The caller bounds `n`; `out` grows in
    /// steps as bytes actually arrive, so a lying length cannot reserve memory up front.
    pub(super) fn read_into(&mut self, n: u32, out: &mut Vec<u8>) -> Result<(), ScanError> {
        self.transfer(u64::from(n), |chunk| out.extend_from_slice(chunk))
    }

    /// Consumes `n` bytes in buffer-sized chunks, handing each to `sink`. Consumes up to the
    /// header limit first, so a stream that ends early reports `Truncated` rather than the limit.
    fn transfer(&mut self, n: u64, mut sink: impl FnMut(&[u8])) -> Result<(), ScanError> {
        let budget = self.limit.saturating_sub(self.pos);
        let mut left = n.min(budget);
        while left > 0 {
            if !self.ensure(1)? {
                return Err(ScanError::Truncated);
            }
            let avail = self.end - self.start;
            let step = usize::try_from(left).map_or(avail, |l| l.min(avail));
            sink(&self.buf[self.start..self.start + step]);
            self.consume(step);
            left -= step as u64;
        }
        if n > budget {
            return Err(ScanError::HeaderLimitExceeded { limit: self.limit });
        }
        Ok(())
    }

    fn charge(&self, n: u64) -> Result<(), ScanError> {
        if self.pos.saturating_add(n) > self.limit {
            return Err(ScanError::HeaderLimitExceeded { limit: self.limit });
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Makes at least `n` (≤ `BUF_LEN`) bytes available; false if the stream ends first.
    /// Calls `read` only while the buffered bytes fall short.
    fn ensure(&mut self, n: usize) -> Result<bool, ScanError> {
        debug_assert!(n <= BUF_LEN);
        if self.end - self.start >= n {
            return Ok(true);
        }
        if self.start + n > BUF_LEN {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(read) => self.end += read.min(BUF_LEN - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(true)
    }
}

fn io_error(e: io::Error) -> ScanError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<DeflateFault>()) {
        Some(DeflateFault::Corrupt) => ScanError::Malformed("corrupt deflate stream"),
        Some(DeflateFault::Incomplete) => ScanError::Truncated,
        None => ScanError::Io(e),
    }
}
