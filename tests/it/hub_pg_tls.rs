//! The hub reaches PostgreSQL over TLS with the server's certificate checked
//! (`sslmode=verify-full` and a CA file): an edge's events go through such a hub into the
//! database over encrypted connections only. A hub given the wrong CA, or a host name the
//! server's certificate does not hold, refuses to start with exit 78 naming the problem and
//! never the password. The run's one PostgreSQL server has TLS on (see
//! [`crate::support::postgres`]); these tests say why they skip where it is absent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::hubs::Backing;
use crate::support::{TestDaemon, eventually, postgres};
use crate::sync::{Hub, assert_hub_holds_the_log, last_seq, options, send_orders, sync_toml};

/// A URL of `server`'s database `plain_url` names, by `host`, with a password (which the
/// server's trust authentication ignores) and `sslmode=verify-full`.
fn verify_full(server: &postgres::PgServer, plain_url: &str, host: &str) -> String {
    let database = plain_url.rsplit('/').next().unwrap();
    format!("postgres://postgres:s3cret@{host}:{}/{database}?sslmode=verify-full", server.port)
}

fn zenedge(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zenedge"));
    command.args(args).stdin(Stdio::null());
    command
}

/// `zenedge hub` on `port`, its output to `log`.
fn hub_process(url: &str, ca: &Path, port: u16, log: &Path) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let out = std::fs::File::create(log).unwrap();
    zenedge(&["hub", "--listen", &listen, "--postgres", url, "--postgres-ca", ca.to_str().unwrap()])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_s_events_reach_postgresql_through_a_hub_on_verified_tls() {
    let server = match postgres::shared() {
        Ok(server) => server,
        Err(reason) => {
            return postgres::skip("an_edge_s_events_reach_postgresql_through_a_hub_on_verified_tls", &reason);
        }
    };
    let plain = server.database();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("hub.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut hub = hub_process(&verify_full(&server, &plain, "localhost"), &server.ca_file(), port, &log);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    eventually("the hub to listen", Duration::from_secs(30), || {
        if let Some(status) = hub.try_wait().unwrap() {
            panic!("the hub exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        async move { tokio::net::TcpStream::connect(addr).await.is_ok() }
    })
    .await;
    let daemon = TestDaemon::start_with(&sync_toml(addr, "")).await;
    send_orders(&daemon, "TLS", 15).await;
    let last = last_seq(&daemon).await;
    let stored =
        format!("SELECT coalesce(max(stored_through), 0) FROM hub_streams WHERE edge_id = '{}'", crate::sync::EDGE);
    eventually("the hub to store the edge's log", Duration::from_secs(30), || async {
        server.psql(&plain, &stored).parse::<u64>().unwrap() >= last
    })
    .await;
    // Every connection of the hub (its pool and its listener) is encrypted.
    let sessions = server.psql(
        &plain,
        "SELECT count(*) FILTER (WHERE s.ssl) || ' over TLS, ' || count(*) FILTER (WHERE NOT s.ssl) || ' plain' \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.datname = current_database() AND a.application_name = 'zenedge-hub'",
    );
    let over_tls: u32 = sessions.split(' ').next().unwrap().parse().unwrap();
    assert!(over_tls >= 2 && sessions.ends_with(", 0 plain"), "the hub's connections: {sessions}");
    let check = Hub::start_on(Backing::Postgres { server: server.clone(), url: plain.clone() }, options(), None).await;
    assert_hub_holds_the_log(&daemon, &check, &[]).await;
    daemon.stop().await.unwrap();
    check.stop().await;
    hub.kill().unwrap();
    hub.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("s3cret"), "the password is never shown: {text}");
}

#[test]
fn a_hub_refuses_to_start_on_a_database_certificate_from_another_ca_or_for_another_host() {
    let server = match postgres::shared() {
        Ok(server) => server,
        Err(reason) => return postgres::skip("a_hub_refuses_to_start_on_a_database_certificate", &reason),
    };
    let plain = server.database();
    let (trusted, other) = (server.ca_file(), server.other_ca_file());
    let refused = |url: &str, ca: &Path, command: &[&str]| {
        let args = [command, &["--postgres", url, "--postgres-ca", ca.to_str().unwrap()]].concat();
        let out = zenedge(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(78), "{command:?} {url}: {text}");
        assert!(!text.contains("s3cret"), "the password is never shown: {text}");
        text
    };
    let serve = ["hub", "--listen", "127.0.0.1:0"];
    let by_name = verify_full(&server, &plain, "localhost");
    let text = refused(&by_name, &other, &serve);
    assert!(text.contains("does not chain to a CA in") && text.contains(other.to_str().unwrap()), "{text}");
    // The certificate names `localhost` only.
    let by_address = verify_full(&server, &plain, "127.0.0.1");
    let text = refused(&by_address, &trusted, &serve);
    assert!(text.contains("does not name the host of the URL (127.0.0.1)") && text.contains("localhost"), "{text}");
    // `zenedge hub migrate` and `check` say the same.
    let text = refused(&by_address, &trusted, &["hub", "migrate"]);
    assert!(text.contains("does not name the host"), "{text}");
    let text = refused(&by_name, &other, &["hub", "check"]);
    assert!(text.contains("does not chain to a CA in"), "{text}");
    // Nothing was written: the database has no schema yet.
    assert_eq!(server.psql(&plain, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'hub_%'"), "0");
}
