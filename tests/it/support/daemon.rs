//! `TestDaemon`: the whole daemon in-process, listening on port 0, on a temp state dir that
//! survives restarts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use zenedge::app::{self, Listeners, RunError, RunOptions};
use zenedge::config::Config;
use zenedge::log::FaultInjector;

pub struct TestDaemon {
    pub mllp: SocketAddr,
    pub dicom: SocketAddr,
    pub http: SocketAddr,
    /// `mllp.tls_listen` and `dicom.tls_listen`, when the test's config sets them (bound on
    /// port 0 like the others, whatever address the config names).
    pub mllp_tls: Option<SocketAddr>,
    pub dicom_tls: Option<SocketAddr>,
    pub dir: Arc<tempfile::TempDir>,
    pub faults: FaultInjector,
    extra_toml: String,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

/// Copies the master key of the state directory `from` (where the tests' daemons keep it) into
/// the state directory `to` (created if needed), as an admin restoring a backup on another
/// box brings the key along.
pub fn copy_master_key(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("master.key"), to.join("master.key")).expect("the daemon made a master key");
}

/// A config for tests: temp state dir, no disk reserve, the API client `test-client`
/// ([`super::access`]), then `extra` (TOML) merged over it key by key.
pub fn test_config(state_dir: &Path, extra: &str) -> Config {
    let base = format!(
        "[site]\ntenant_id = \"t1\"\nhospital_id = \"h1\"\nedge_id = \"e1\"\n\
         [store]\nstate_dir = {dir:?}\ndisk_reserve = \"0\"\n[http]\n{keys}{client}",
        dir = state_dir.display().to_string(),
        keys = super::access::HTTP_KEYS,
        client = super::access::client_toml(),
    );
    let mut table: toml::Table = base.parse().unwrap();
    let extra: toml::Table = extra.parse().expect("extra test config is TOML");
    for (section, values) in extra {
        let target = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match (target, values) {
            (toml::Value::Table(t), toml::Value::Table(mut v)) => {
                // Clients the test adds come besides `test-client`.
                if let (Some(toml::Value::Array(mine)), Some(toml::Value::Array(theirs))) =
                    (t.get("clients"), v.get_mut("clients"))
                {
                    theirs.splice(0..0, mine.iter().cloned());
                }
                t.extend(v)
            }
            (slot, v) => *slot = v,
        }
    }
    let text = toml::to_string(&table).unwrap();
    Config::from_toml(&text).unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"))
}

/// A listener on a fresh loopback port, if `wanted`.
async fn bind_if(wanted: bool) -> Option<TcpListener> {
    if wanted { Some(TcpListener::bind("127.0.0.1:0").await.unwrap()) } else { None }
}

fn address(listener: &Option<TcpListener>) -> Option<SocketAddr> {
    listener.as_ref().map(|l| l.local_addr().unwrap())
}

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with("").await
    }

    /// Starts with extra config (TOML, merged over the test defaults).
    pub async fn start_with(extra: &str) -> TestDaemon {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, extra).await
    }

    pub async fn start_in(dir: Arc<tempfile::TempDir>, extra: &str) -> TestDaemon {
        Self::start_with_faults(dir, extra, FaultInjector::default()).await
    }

    /// Starts with `faults` (and the storage hook it carries) installed.
    pub async fn start_with_faults(dir: Arc<tempfile::TempDir>, extra: &str, faults: FaultInjector) -> TestDaemon {
        let config = test_config(dir.path(), extra);
        let mllp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dicom = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (mllp_addr, dicom_addr, http_addr) =
            (mllp.local_addr().unwrap(), dicom.local_addr().unwrap(), http.local_addr().unwrap());
        let mllp_tls = bind_if(config.mllp.tls_listen.is_some()).await;
        let dicom_tls = bind_if(config.dicom.tls_listen.is_some()).await;
        let (mllp_tls_addr, dicom_tls_addr) = (address(&mllp_tls), address(&dicom_tls));
        let listeners = Listeners { mllp: Some(mllp), mllp_tls, dicom: Some(dicom), dicom_tls, http };
        let shutdown = CancellationToken::new();
        let options = RunOptions { faults: Some(faults.clone()), reload: None };
        let task = tokio::spawn(app::run(config, listeners, shutdown.clone(), options));
        TestDaemon {
            mllp: mllp_addr,
            dicom: dicom_addr,
            http: http_addr,
            mllp_tls: mllp_tls_addr,
            dicom_tls: dicom_tls_addr,
            dir,
            faults,
            extra_toml: extra.to_owned(),
            shutdown,
            task,
        }
    }

    pub async fn client(&self) -> super::MllpClient {
        super::MllpClient::connect(self.mllp).await
    }

    /// Signals shutdown and waits for the daemon to finish draining.
    pub async fn stop(self) -> Result<(), RunError> {
        self.shutdown.cancel();
        self.task.await.expect("daemon task panicked")
    }

    /// Waits for the daemon to stop by itself (e.g. after a log failure).
    pub async fn stopped(self) -> Result<(), RunError> {
        self.task.await.expect("daemon task panicked")
    }

    /// Stops and starts again on the same state directory and config.
    pub async fn restart(self) -> TestDaemon {
        let (dir, extra) = (self.dir.clone(), self.extra_toml.clone());
        self.stop().await.expect("clean stop");
        Self::start_in(dir, &extra).await
    }

    pub async fn get(&self, path: &str) -> super::http::Response {
        super::http::get(self.http, path).await
    }

    /// Every event in the log, via the API.
    pub async fn events(&self) -> Vec<serde_json::Value> {
        super::http::all_events(self.http).await
    }
}
