//! No anonymous access to patient data over HTTP: every route of the API but `/healthz` and
//! `/readyz` refuses a request without a client token (401) or with a client lacking the
//! route's scope (403), over a real socket; bad input at the door (a megabyte header, a
//! flood of guessed tokens) is cut in bounded memory and time; the operator commands on the
//! box work with the local token file alone; `zenedge token new` makes a working client.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestDaemon;
use crate::support::access::{TOKEN, client_toml_for};
use crate::support::http::get_as;
use zenedge::api::Access;
use zenedge::config::Scope;

const READER: &str = "reader-token-0123456789abcdef";
const STATUS: &str = "status-token-0123456789abcdef";

/// A concrete path for a route's pattern (`{seq}` → `1`).
fn concrete(pattern: &str) -> String {
    pattern.split('/').map(|part| if part.starts_with('{') { "1" } else { part }).collect::<Vec<_>>().join("/")
}

/// The status of `method path` with `token` (the status line only: the event stream's body
/// never ends, a backup's is a tar).
async fn request(d: &TestDaemon, method: &axum::http::Method, path: &str, token: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(d.http).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let length = if *method == axum::http::Method::POST { "Content-Length: 0\r\n" } else { "" };
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}{length}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut line = [0u8; 12];
    stream.read_exact(&mut line).await.unwrap();
    String::from_utf8_lossy(&line[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_but_healthz_and_readyz_refuses_anonymous_requests_and_clients_without_the_scope() {
    let clients = format!(
        "[http]\nauth_failures_per_minute = 1000\n{}{}",
        client_toml_for("viewer", READER, &["read"]),
        client_toml_for("monitor", STATUS, &["status"])
    );
    let d = TestDaemon::start_with(&clients).await;
    for (method, pattern, access) in zenedge::api::route_table() {
        let path = concrete(pattern);
        let anonymous = request(&d, &method, &path, None).await;
        if access == Access::Open {
            assert_eq!(anonymous, 200, "{method} {path}");
            continue;
        }
        assert_eq!(anonymous, 401, "{method} {path} answered an anonymous request");
        assert_eq!(request(&d, &method, &path, Some("zt_guessed")).await, 401, "{method} {path}");
        let needed = if let Access::Scope(scope) = access { scope } else { Scope::Status };
        let lacking = if needed == Scope::Read { STATUS } else { READER };
        assert_eq!(request(&d, &method, &path, Some(lacking)).await, 403, "{method} {path} without {needed:?}");
        let served = request(&d, &method, &path, Some(TOKEN)).await;
        assert!(![401, 403, 429].contains(&served), "{method} {path} refused a client with every scope: {served}");
    }
    let anonymous = get_as(d.http, "/api/v1/elsewhere", None).await;
    assert_eq!((anonymous.status, anonymous.json()["error"].is_string()), (401, true));
    assert!(anonymous.headers.to_ascii_lowercase().contains("www-authenticate: bearer"), "{}", anonymous.headers);
    assert_eq!(get_as(d.http, "/api/v1/elsewhere", Some(READER)).await.status, 404);
    d.stop().await.unwrap();
}

/// Sends `head_bytes` of one header line, then reads what comes back until the server closes
/// (a reset after the answer counts as closed).
async fn send_header_of(d: &TestDaemon, header_bytes: usize) -> String {
    let stream = TcpStream::connect(d.http).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let token = "a".repeat(header_bytes);
        let head = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        let _ = write.write_all(head.as_bytes()).await;
        write
    });
    let mut received = Vec::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(20), read.read_to_end(&mut received)).await.expect("closed in time");
    drop(writer.await);
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_authorization_header_is_refused_with_431_after_reading_at_most_max_header_bytes() {
    let d = TestDaemon::start_with("[http]\nmax_header_bytes = \"16KiB\"\nheader_timeout = \"30s\"\n").await;
    let answer = send_header_of(&d, 1 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    let answer = send_header_of(&d, 20 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "just over the limit: {answer:?}");
    let answer = send_header_of(&d, 12 << 10).await;
    assert!(answer.starts_with("HTTP/1.1 401 "), "under the limit it is only a wrong token: {answer:?}");
    assert_eq!(d.get("/healthz").await.status, 200);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_is_answered_429_with_retry_after_past_ten_a_minute() {
    let d = TestDaemon::start().await;
    for i in 0..10 {
        assert_eq!(get_as(d.http, "/api/v1/events", Some(&format!("zt_guess-{i}"))).await.status, 401);
    }
    for i in 0..200 {
        let r = get_as(d.http, "/api/v1/events", Some(&format!("zt_guess-more-{i}"))).await;
        assert_eq!(r.status, 429, "{}", r.body);
        let retry: u64 = r.headers.lines().find_map(|l| l.strip_prefix("retry-after: ")).unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry), "a failure refills every 6 s: {retry}");
    }
    let metrics = d.get("/metrics").await;
    assert_eq!(metrics.status, 429, "the right token waits too, from that address");
    assert_eq!(get_as(d.http, "/healthz", None).await.status, 200, "health stays open");
    d.stop().await.unwrap();
}

fn zenedge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zenedge")).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_the_box_use_the_local_token_that_only_the_daemons_user_can_read() {
    let d = TestDaemon::start().await;
    assert_eq!(d.get("/healthz").await.status, 200, "started");
    let file = d.dir.path().join(zenedge::operator::local_token::FILE);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read_to_string(&file).unwrap();
    for path in ["/api/v1/dead-letters", "/api/v1/events", "/api/v1/status", "/metrics"] {
        assert_eq!(get_as(d.http, path, Some(&first)).await.status, 200, "every scope: {path}");
    }
    let work = tempfile::tempdir().unwrap();
    let config = crate::support::config::write_for_daemon(&work.path().join("edge.toml"), d.dir.path(), d.http, None);
    let config = config.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || zenedge(&["status", "--json", "--config", &config])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Another user (no local token, no operator token) is told what to do.
    let elsewhere =
        crate::support::config::write_for_daemon(&work.path().join("other.toml"), work.path(), d.http, None);
    let elsewhere = elsewhere.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || zenedge(&["status", "--config", &elsewhere])).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("401") && err.contains("local token"), "{err}");
    // A restart draws a new token: the old one is refused.
    let d = d.restart().await;
    assert_eq!(d.get("/healthz").await.status, 200, "started again");
    let second = std::fs::read_to_string(&file).unwrap();
    assert_ne!(first, second);
    assert_eq!(get_as(d.http, "/api/v1/status", Some(&first)).await.status, 401);
    assert_eq!(get_as(d.http, "/api/v1/status", Some(&second)).await.status, 200);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_new_prints_a_token_once_and_the_lines_that_let_it_in_with_its_scopes() {
    let out = tokio::task::spawn_blocking(|| zenedge(&["token", "new", "ris-viewer", "--scopes", "read,audit"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text.lines().find(|l| l.starts_with("zt_")).expect("the token").to_owned();
    let lines: String =
        text.lines().skip_while(|l| !l.starts_with("[[http.clients]]")).map(|l| format!("{l}\n")).collect();
    assert!(!lines.contains(&token), "the config lines hold only the hash: {lines}");
    let d = TestDaemon::start_with(&lines).await;
    assert_eq!(get_as(d.http, "/api/v1/events", Some(&token)).await.status, 200);
    assert_eq!(get_as(d.http, "/api/v1/status", Some(&token)).await.status, 403, "no status scope");
    d.stop().await.unwrap();
    let out = tokio::task::spawn_blocking(|| zenedge(&["token", "new", "x y", "--scopes", "write"])).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("name:") && err.contains("\"write\" is not a scope"), "{err}");
}
