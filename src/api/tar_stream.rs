//! A tar built on the blocking pool and streamed as the response body (the backup, a
//! patient's export): the writer hands the response chunks over a bounded channel, so it
//! waits for a slow client instead of filling memory, and a failure after the answer started
//! reaches the client as a cut stream.

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

/// Bytes per chunk of the response.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the writer and the response.
const DEPTH: usize = 8;

/// The writer's end ([`Sender`]) and the response body that drains it.
pub(super) fn channel() -> (Sender, Body) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(DEPTH);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (Sender { tx, buf: Vec::with_capacity(CHUNK) }, Body::from_stream(stream))
}

/// A `Write` that hands the response [`CHUNK`]-sized pieces. Call [`Sender::finish`] at the
/// end (a dropped sender loses what it buffered); [`Sender::fail`] cuts the stream.
pub(super) struct Sender {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Clone for Sender {
    /// Another handle on the same stream, with an empty buffer (for [`Sender::fail`]).
    fn clone(&self) -> Sender {
        Sender { tx: self.tx.clone(), buf: Vec::new() }
    }
}

impl Sender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Sends what is buffered.
    pub(super) fn finish(mut self) -> io::Result<()> {
        self.send()
    }

    /// Ends the stream with `error`: the client sees the body break off.
    pub(super) fn fail(self, error: io::Error) {
        let _ = self.tx.blocking_send(Err(error));
    }
}

impl Write for Sender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
