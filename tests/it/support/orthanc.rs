//! A real archive for the forwarding tests: Orthanc (Debian's `orthanc`) on 127.0.0.1, on
//! free ports, storing into a temp directory; stopped and started again on the same ports
//! and storage to play an archive that goes away and comes back.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::eventually;

pub struct Orthanc {
    pub dicom: u16,
    pub http: u16,
    pub aet: &'static str,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Configuration keys besides ours (e.g. transfer syntaxes it refuses).
    extra: serde_json::Value,
}

/// The Orthanc binary, or `None` (with the reason printed) when it is not installed.
pub fn binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/Orthanc", "/usr/bin/Orthanc"].iter().map(PathBuf::from).find(|p| p.is_file());
    if found.is_none() {
        println!("skipping: Orthanc is not installed (Debian package orthanc)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Orthanc {
    /// Starts Orthanc and waits until it answers over HTTP and DICOM; `None` if not installed.
    pub async fn start() -> Option<Orthanc> {
        Orthanc::start_with(serde_json::json!({})).await
    }

    /// [`Orthanc::start`] with `extra` configuration keys.
    pub async fn start_with(extra: serde_json::Value) -> Option<Orthanc> {
        binary()?;
        let mut o = Orthanc {
            dicom: free_port(),
            http: free_port(),
            aet: "ORTHANC",
            dir: tempfile::tempdir().unwrap(),
            child: None,
            extra,
        };
        o.resume().await;
        Some(o)
    }

    /// Starts the stopped Orthanc again, same ports, same storage.
    pub async fn resume(&mut self) {
        let mut config = serde_json::json!({
            "Name": "zenedge-test-archive",
            "StorageDirectory": self.dir.path().join("storage"),
            "IndexDirectory": self.dir.path().join("index"),
            "HttpPort": self.http,
            "DicomPort": self.dicom,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAet": false,
            "Plugins": [],
        });
        for (key, value) in self.extra.as_object().into_iter().flatten() {
            config[key] = value.clone();
        }
        let path = self.dir.path().join("orthanc.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let log = std::fs::File::create(self.dir.path().join("orthanc.log")).unwrap();
        let child = Command::new(binary().unwrap())
            .arg(&path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start Orthanc");
        self.child = Some(child);
        let http = self.http;
        eventually("Orthanc answers", Duration::from_secs(30), || async move {
            tokio::task::spawn_blocking(move || ureq::get(&format!("http://127.0.0.1:{http}/system")).call().is_ok())
                .await
                .unwrap()
        })
        .await;
    }

    /// Restarts Orthanc (same ports and storage) with `extra` configuration keys instead.
    pub async fn restart_with(&mut self, extra: serde_json::Value) {
        self.stop();
        self.extra = extra;
        self.resume().await;
    }

    /// What Orthanc logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }

    /// Stops Orthanc (SIGKILL: an archive that vanishes).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET path` of the REST API, as bytes.
    pub async fn get(&self, path: &str) -> Vec<u8> {
        let url = format!("http://127.0.0.1:{}{path}", self.http);
        tokio::task::spawn_blocking(move || {
            let mut answer = ureq::get(&url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
            answer.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap()
        })
        .await
        .unwrap()
    }

    /// `GET path` of the REST API, as JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_slice(&self.get(path).await).unwrap()
    }

    /// Orthanc's id of the instance with `sop_instance_uid`, if it holds it.
    pub async fn instance_id(&self, sop_instance_uid: &str) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/tools/lookup", self.http);
        let uid = sop_instance_uid.to_owned();
        let found: serde_json::Value = tokio::task::spawn_blocking(move || {
            let mut answer = ureq::post(&url).send(uid.as_bytes()).unwrap();
            serde_json::from_slice(&answer.body_mut().read_to_vec().unwrap()).unwrap()
        })
        .await
        .unwrap();
        found.as_array()?.iter().find(|f| f["Type"] == "Instance").map(|f| f["ID"].as_str().unwrap().to_owned())
    }

    /// How many instances it holds.
    pub async fn instance_count(&self) -> usize {
        self.json("/instances").await.as_array().map_or(0, Vec::len)
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}
