//! A real PostgreSQL for the hub's tests, from the distribution's packages (`postgresql` on
//! Debian: `/usr/lib/postgresql/<version>/bin`, or the directory in `ZENEDGE_TEST_PG_BIN`).
//!
//! One server per test-binary run, started lazily by the first test that asks
//! ([`shared`]); every test then gets a fresh database of its own ([`PgServer::database`]),
//! so tests run in parallel without seeing each other's rows. A test that must stop or
//! restart the server takes a [`private`] one. The data directory is a temp dir; as root the
//! server runs as the `postgres` user (`initdb` refuses root) through `runuser`. It listens on
//! 127.0.0.1 on a free port (PostgreSQL cannot take port 0: a port is picked and, on a clash,
//! another). TLS is on, with a certificate for `localhost` (and no other name) from a test
//! CA ([`PgServer::ca_file`]): a client asking for TLS gets it, one that does not gets a plain
//! connection. A watchdog in its own session stops the server (`pg_ctl stop -m immediate`) and
//! removes its directory as soon as the test binary is gone, however it ended, so no server
//! outlives the run.
//!
//! Without the binaries the tests that need PostgreSQL print why and pass without running.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use super::certs::{Leaf, TestPki};

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    /// The server's binaries.
    bin: PathBuf,
    /// Holds `data/` and the socket; removed on drop (and by the watchdog).
    dir: PathBuf,
    pub port: u16,
    /// `runuser -u postgres --` when running as root.
    as_postgres: bool,
    /// Stopped on drop (a private server); the shared one is left to the watchdog.
    owned: bool,
    /// The CA of the server's certificate (and another one).
    pki: TestPki,
}

static SHARED: OnceLock<Result<Arc<PgServer>, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server shared by this run's tests, or why there is none.
pub fn shared() -> Result<Arc<PgServer>, String> {
    SHARED.get_or_init(|| PgServer::start(false).map(Arc::new)).clone()
}

/// A server of the calling test's own (to stop or restart it), or why there is none.
pub fn private() -> Result<PgServer, String> {
    PgServer::start(true)
}

/// Prints why a PostgreSQL test does not run.
pub fn skip(test: &str, reason: &str) {
    println!("SKIPPED {test}: {reason}");
}

/// The directory of the newest installed PostgreSQL's binaries.
fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ZENEDGE_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (apt-get install postgresql)".to_owned())?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    fn start(owned: bool) -> Result<PgServer, String> {
        let bin = binaries()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("zenedge-pg-").tempdir().map_err(|e| e.to_string())?.keep();
        let pki = TestPki::new();
        // The server's certificate and key, readable by the server only.
        let leaf = Leaf {
            stem: "server".into(),
            common_name: Some("localhost".into()),
            alt_names: vec!["localhost".into()],
            ..Leaf::server()
        };
        let (cert, key) = pki.issue(&dir, &leaf);
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if as_postgres {
            let ids = Command::new("id").args(["-u", "postgres"]).output().map_err(|e| e.to_string())?;
            let uid: u32 =
                String::from_utf8_lossy(&ids.stdout).trim().parse().map_err(|_| "no postgres user".to_owned())?;
            let gids = Command::new("id").args(["-g", "postgres"]).output().map_err(|e| e.to_string())?;
            let gid: u32 =
                String::from_utf8_lossy(&gids.stdout).trim().parse().map_err(|_| "no postgres group".to_owned())?;
            for path in [&dir, &cert, &key] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
            }
        }
        let mut server = PgServer { bin, dir, port: 0, as_postgres, owned, pki };
        server.watchdog();
        let data = server.dir.join("data");
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "--no-sync", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        for _ in 0..5 {
            server.port = free_port();
            if server.pg_ctl_start().is_ok() {
                return Ok(server);
            }
        }
        let log = std::fs::read_to_string(server.dir.join("log")).unwrap_or_default();
        Err(format!("PostgreSQL did not start: {log}"))
    }

    /// A command of the server's binaries, as the `postgres` user when running as root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -k {dir} -p {} -c fsync=off -c max_connections=300 -c shared_buffers=64MB \
             -c ssl=on -c ssl_cert_file={dir}/server.pem -c ssl_key_file={dir}/server.key",
            self.port,
            dir = self.dir.display(),
        );
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() { Ok(()) } else { Err("pg_ctl start failed".into()) }
    }

    /// Stops the server (fast: open transactions are rolled back, clients disconnected).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-m", "fast", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts a stopped server again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl_start().expect("PostgreSQL starts again on its port");
    }

    /// A watchdog in its own session: once this process is gone, stop the server and remove
    /// its directory.
    fn watchdog(&self) {
        let pg_ctl = format!(
            "{}{}",
            if self.as_postgres { "runuser -u postgres -- " } else { "" },
            self.bin.join("pg_ctl").display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {pg_ctl} -D '{dir}/data' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display(),
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// A new, empty database of this server; its URL.
    pub fn database(&self) -> String {
        let name = format!("zt_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "CREATE DATABASE failed: {}", String::from_utf8_lossy(&out.stderr));
        self.url(&name)
    }

    /// A new database holding what the database of `url` holds now (`pg_dump`, as a backup
    /// would); its URL.
    pub fn copy_database(&self, url: &str) -> String {
        let copy = self.database();
        let dump = Command::new(self.bin.join("pg_dump")).args(["--no-owner", url]).output();
        let dump = dump.expect("pg_dump runs");
        assert!(dump.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&dump.stderr));
        let mut psql = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &copy])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("psql runs");
        std::io::Write::write_all(&mut psql.stdin.take().unwrap(), &dump.stdout).unwrap();
        assert!(psql.wait().unwrap().success(), "the dump does not load");
        copy
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` in the database of `url` with psql; its output (unaligned, tuples only).
    pub fn psql(&self, url: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-q", url, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The CA the server's certificate (for `localhost` only) chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.pki.ca_path()
    }

    /// A CA the server's certificate does not chain to.
    pub fn other_ca_file(&self) -> PathBuf {
        self.pki.other_ca_path()
    }

    /// The directory of the server's binaries.
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.owned {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
