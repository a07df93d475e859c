//! A minimal HTTP/1.1 client over loopback: GET, POST without a body for operator actions,
//! and a raw request for the hub's batches. `get` presents the token of `test-client`
//! ([`super::access`]), which every test config has; `get_as` another one or none.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, Some(super::access::TOKEN)).await
}

/// GET with `token` as the bearer token, or anonymous with `None`.
pub async fn get_as(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    request(addr, "GET", path, token).await
}

/// Every event in the daemon's log, page by page through the API.
pub async fn all_events(addr: SocketAddr) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = get(addr, &format!("/api/v1/events?after={after}&limit=1000")).await.json();
        all.extend(page["items"].as_array().expect("an events page").iter().cloned());
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// Every record of the daemon's audit trail, page by page through the API (each read adds
/// an Audit Log Used record, after the page it reads).
pub async fn audit_trail(addr: SocketAddr) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let response = get(addr, &format!("/api/v1/audit?after={after}&limit=1000")).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let page = response.json();
        all.extend(page["items"].as_array().expect("an audit page").iter().cloned());
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// The records of `trail` whose EventID is `code`.
pub fn audited<'a>(trail: &'a [serde_json::Value], code: &str) -> Vec<&'a serde_json::Value> {
    trail.iter().filter(|r| r["record"]["event"]["code"] == code).collect()
}

/// The Security Alerts (110113) of the trail whose object describes them as `kind`
/// (`configuration_reloaded`, `certificate_expiring`…).
pub async fn security_alerts(addr: SocketAddr, kind: &str) -> Vec<serde_json::Value> {
    let trail = audit_trail(addr).await;
    audited(&trail, "110113")
        .into_iter()
        .filter(|r| r["record"]["objects"][0]["description"] == kind)
        .cloned()
        .collect()
}

/// POST with an empty body and, when given, `Authorization: Bearer <token>`.
pub async fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    request(addr, "POST", path, token).await
}

/// Sends `bytes` (a whole request, with `Connection: close`) and reads the response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    stream.write_all(bytes).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body split");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    Response { status, headers: head.to_owned(), body: body.to_owned() }
}

async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect to HTTP");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let length = if method == "POST" { "Content-Length: 0\r\n" } else { "" };
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{length}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body split");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Response { status, headers: head.to_owned(), body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}
