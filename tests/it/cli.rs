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

#[test]
fn serve_with_an_unknown_key_exits_78_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n[mlp]\n").unwrap();
    let out = zenedge().arg("serve").arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mlp"));
}
