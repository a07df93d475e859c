//! A Server-Sent Events client for tests: one GET held open, its chunked body decoded as it
//! arrives and split into events the way the SSE format defines them.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for the next event before it fails.
const WAIT: Duration = Duration::from_secs(20);

/// One event (comments, such as keep-alives, are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", self.data))
    }
}

pub struct SseClient {
    pub status: u16,
    pub headers: String,
    stream: TcpStream,
    /// Received, not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked, not yet split into events.
    body: Vec<u8>,
    /// The last chunk came.
    ended: bool,
}

/// Opens `path` with the extra request headers `headers`, as `test-client`
/// ([`super::access`]).
pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let auth = format!("Authorization: Bearer {}\r\n", super::access::TOKEN);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n{auth}{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = tokio::time::timeout(WAIT, stream.read_buf(&mut raw)).await.expect("response head in time").unwrap();
        assert!(n > 0, "connection closed before the response head");
    };
    let head = String::from_utf8(raw[..head_end].to_vec()).expect("UTF-8 head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let raw = raw.split_off(head_end + 4);
    SseClient { status, headers: head, stream, raw, body: Vec::new(), ended: false }
}

impl SseClient {
    /// The next event; fails the test if none comes in time.
    pub async fn next_event(&mut self) -> SseEvent {
        tokio::time::timeout(WAIT, self.next()).await.expect("an event in time").expect("the stream to go on")
    }

    /// The next event, `None` once the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            self.dechunk();
            while let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.body.drain(..end + 2).collect();
                if let Some(event) = parse(&String::from_utf8(block).expect("UTF-8 event")) {
                    return Some(event);
                }
            }
            if self.ended || self.stream.read_buf(&mut self.raw).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// Moves every complete chunk from `raw` to `body`.
    fn dechunk(&mut self) {
        while let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size =
                std::str::from_utf8(&self.raw[..line_end]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
            let size = size.expect("a chunk size line");
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }
}

/// One event block; `None` for a block of comments only.
fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data, mut any) = (None, None, Vec::new(), false);
    for line in block.lines().filter(|l| !l.is_empty() && !l.starts_with(':')) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        any = true;
        match field {
            "id" => id = Some(value),
            "event" => event = Some(value),
            "data" => data.push(value),
            _ => {}
        }
    }
    any.then(|| SseEvent { id, event, data: data.join("\n") })
}
