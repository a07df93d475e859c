//! The command line as an operator uses it: `check-config` lists every problem with its key
//! and exits 78 before anything is bound.

use std::process::Command;

fn zenedge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_zenedge"))
}

#[test]
fn check_config_accepts_the_example_config() {
    let out = zenedge().args(["check-config", "config.example.toml"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_config_names_each_bad_key_and_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n\
         [mllp]\nidle_timeout = \"soon\"\nmax_message_bytes = \"huge\"\n",
    )
    .unwrap();
    let out = zenedge().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mllp.idle_timeout") && stderr.contains("mllp.max_message_bytes"), "{stderr}");
}

/// Everything wrong with a file comes out of one run, as the README says: unknown keys and
/// mistyped values (which used to stop the reading at the first), each bad allow-list
/// entry, and two listeners sharing an address (which used to pass and then fail at start).
#[test]
fn check_config_reports_every_problem_of_a_file_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n\
         [mllp]\nlisten = \"127.0.0.1:2575\"\nlisten_port = 2575\nidle_timeout = 300\nmax_message_bytes = \"16MB\"\n\
         [dicom]\nlisten = \"127.0.0.1:2575\"\ncalling_ae_allow = [\"X@nowhere\", \"CT01\", \"Y@elsewhere\"]\n\
         max_associations = \"32\"\n",
    )
    .unwrap();
    let out = zenedge().arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "mllp.listen_port: unknown key",
        "mllp.idle_timeout: must be a string, not an integer (300); durations are strings",
        "mllp.max_message_bytes: \"16MB\" has a decimal unit",
        "dicom.max_associations: must be an integer",
        "dicom.calling_ae_allow[0]:",
        "dicom.calling_ae_allow[2]:",
        "dicom.listen: 127.0.0.1:2575 clashes with mllp.listen",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in\n{stderr}");
    }
    assert_eq!(stderr.lines().count(), 7, "one line per problem:\n{stderr}");
}

#[test]
fn serve_with_an_unknown_key_exits_78_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n[mlp]\n").unwrap();
    let out = zenedge().arg("serve").arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mlp"));
}

/// A config whose sync uses `cert`/`key` against the test CA.
fn sync_config(
    dir: &std::path::Path,
    pki: &crate::support::certs::TestPki,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::path::PathBuf {
    let file = dir.join("sync.toml");
    std::fs::write(
        &file,
        format!(
            "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e1\"\n[store]\nstate_dir = {state:?}\n\
             [sync]\nhub_url = \"https://localhost:1\"\nca_file = {ca:?}\nclient_cert = {cert:?}\nclient_key = {key:?}\n",
            state = dir.join("state").display().to_string(),
            ca = pki.ca_path().display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        ),
    )
    .unwrap();
    file
}

#[test]
fn check_config_and_serve_refuse_an_expired_sync_certificate_with_its_key_and_exit_78() {
    let pki = crate::support::certs::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = pki.expired_client(dir.path(), "e1");
    let file = sync_config(dir.path(), &pki, &cert, &key);
    for args in [vec!["check-config".into(), file.clone()], vec!["serve".into(), "--config".into(), file.clone()]] {
        let out = zenedge().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("sync.client_cert (") && stderr.contains("expired on 2001-01-01"), "{stderr}");
    }
    let (cert, key) = pki.client(dir.path(), "e1");
    let out = zenedge().arg("check-config").arg(sync_config(dir.path(), &pki, &cert, &key)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn status_without_a_running_daemon_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let file = dir.path().join("edge.toml");
    std::fs::write(
        &file,
        format!(
            "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n[http]\nlisten = \"0.0.0.0:{port}\"\n"
        ),
    )
    .unwrap();
    let out = zenedge().args(["status", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("does not answer at 127.0.0.1:{port}")), "{stderr}");
}

/// A second `serve` on the state directory of a running daemon says what restore and verify
/// say, not redb's "Database already open. Cannot acquire lock.".
#[test]
fn a_second_serve_on_the_same_state_directory_says_it_is_in_use_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zenedge.toml");
    crate::support::process::write_config(&config, &dir.path().join("state"));
    let _first = crate::support::process::spawn(&config);
    let out = zenedge().args(["serve", "--config"]).arg(&config).env("RUST_LOG", "info").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("zenedge.redb is in use") && stderr.contains("stop the daemon first"), "{stderr}");
    assert!(!stderr.contains("Cannot acquire lock"), "{stderr}");
}

/// The `[tls]` identity is checked like the sync's certificates: every unusable file named
/// with its key in one run (with the sync's problem too), exit 78 from check-config and serve;
/// once the files are good, check-config passes and warns about the plain listener that
/// takes HL7 from the network.
#[test]
fn check_config_names_every_unusable_tls_file_and_warns_about_plain_listeners_off_loopback() {
    let tls = crate::support::tls::EdgeTls::new();
    let dir = tempfile::tempdir().unwrap();
    let (expired, expired_key) = tls.pki.expired_client(dir.path(), "e1");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM\n").unwrap();
    let config = |cert: &std::path::Path,
                  ca: &std::path::Path,
                  (sync_cert, sync_key): &(std::path::PathBuf, std::path::PathBuf)| {
        let file = dir.path().join("tls.toml");
        let text = format!(
            "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e1\"\n[store]\nstate_dir = {state:?}\n\
             [mllp]\nlisten = \"0.0.0.0:0\"\ntls_listen = \"127.0.0.1:0\"\n\
             [tls]\ncert = {cert:?}\nkey = {key:?}\nclient_ca = {ca:?}\n\
             [sync]\nhub_url = \"https://localhost:1\"\nca_file = {ca:?}\nclient_cert = {sync_cert:?}\nclient_key = {sync_key:?}\n",
            state = dir.path().join("state").display().to_string(),
            cert = cert.display().to_string(),
            key = tls.key.display().to_string(),
            ca = ca.display().to_string(),
            sync_cert = sync_cert.display().to_string(),
            sync_key = sync_key.display().to_string(),
        );
        std::fs::write(&file, text).unwrap();
        file
    };
    let bad = config(&expired, &garbage, &(expired.clone(), expired_key.clone()));
    for args in [vec!["check-config".into(), bad.clone()], vec!["serve".into(), "--config".into(), bad.clone()]] {
        let out = zenedge().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for needle in
            ["sync.ca_file (", "tls.cert (", "expired on 2001-01-01", "tls.client_ca (", "holds no certificate"]
        {
            assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        }
    }
    let good = config(&tls.cert, &tls.ca(), &tls.client("e1"));
    let out = zenedge().arg("check-config").arg(&good).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: mllp.listen: 0.0.0.0:0 takes HL7 messages unencrypted"), "{stderr}");
}
