//! SIGHUP reloads the `[tls]` files of the real binary: new connections get the new
//! certificate and connections already open keep theirs; a broken file changes nothing in
//! use and is logged at ERROR as a security alert. Both are recorded in the audit trail.

use crate::support::certs::{Leaf, fingerprint_of};
use crate::support::hl7msg::{ack_code, orm};
use crate::support::http::security_alerts;
use crate::support::logged::{Logged, ready_address};
use crate::support::tls::{EdgeTls, TlsMllpClient, alerts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_puts_a_new_certificate_in_use_for_new_connections_and_a_broken_one_changes_nothing() {
    let tls = EdgeTls::new();
    let first = fingerprint_of(&tls.cert);
    let section = tls.section("");
    let daemon =
        Logged::start_edited(|text| text.replace("[mllp]\n", "[mllp]\ntls_listen = \"127.0.0.1:0\"\n") + &section);
    let ready = daemon.wait_for("zenedge is ready").await;
    let (addr, http) = (ready_address(&ready, "mllp_tls"), ready_address(&ready, "http"));
    let ris = tls.client("ris");
    let mut open = TlsMllpClient::connect(addr, &tls.ca(), &ris).await.expect("a TLS connection");
    assert_eq!(open.server_fingerprint, first);

    let renewed = tls.pki.issue(tls.dir.path(), &Leaf { stem: "renewed".into(), ..Leaf::server() });
    std::fs::copy(&renewed.0, &tls.cert).unwrap();
    std::fs::copy(&renewed.1, &tls.key).unwrap();
    let second = fingerprint_of(&tls.cert);
    assert_ne!(first, second);
    daemon.signal("HUP");
    daemon.wait_for("TLS identity reloaded").await;
    let fresh = TlsMllpClient::connect(addr, &tls.ca(), &ris).await.expect("a TLS connection after the reload");
    assert_eq!(fresh.server_fingerprint, second, "a new connection gets the new certificate");
    let ack = open.send(&orm("BEFORE-RELOAD", "ACC-R1")).await.expect("the open connection still works");
    assert_eq!(ack_code(&ack), "AA");
    // The new security configuration is in the audit trail, as a success.
    let reloaded = crate::support::eventually("the reload's record", std::time::Duration::from_secs(10), || async {
        let reloaded = security_alerts(http, "configuration_reloaded").await;
        if reloaded.is_empty() { Err("none yet".to_owned()) } else { Ok(reloaded) }
    })
    .await;
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert_eq!(reloaded[0]["record"]["outcome"], "Success");
    let why = reloaded[0]["record"]["outcome_description"].as_str().unwrap();
    assert!(why.contains(&second), "names the certificate now in use: {why}");

    std::fs::write(&tls.key, "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n").unwrap();
    daemon.signal("HUP");
    let log = daemon.wait_for("configuration_reload_failed").await;
    let line = log.lines().find(|l| l.contains("configuration_reload_failed")).unwrap();
    assert!(line.contains("ERROR") && line.contains("security alert"), "{line}");
    assert!(line.contains("tls.key (") && line.contains("the identity in use stays"), "{line}");
    let after = TlsMllpClient::connect(addr, &tls.ca(), &ris).await.expect("still served");
    assert_eq!(after.server_fingerprint, second, "the identity in use stays");
    assert_eq!(alerts(http, "configuration_reload_failed").await, 1);
    let refused =
        crate::support::eventually("the refused reload's record", std::time::Duration::from_secs(10), || async {
            let refused = security_alerts(http, "configuration_reload_failed").await;
            if refused.is_empty() { Err("none yet".to_owned()) } else { Ok(refused) }
        })
        .await;
    assert_eq!(refused[0]["record"]["outcome"], "MinorFailure");
    assert!(refused[0]["record"]["outcome_description"].as_str().unwrap().contains("tls.key ("));
    assert_eq!(daemon.text().matches("TLS identity reloaded").count(), 1);
    let log = daemon.stop();
    assert!(log.contains("SIGHUP received"), "{log}");
}
