use super::*;

#[test]
fn every_alert_is_counted_by_its_kind() {
    let metrics = Arc::new(Metrics::new());
    let alerts = Alerts::new(metrics.clone());
    let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
    alerts.alert(AlertKind::TlsHandshakeRefused, Facts::connection("mllp_tls", peer, "no client certificate"));
    alerts.alert(AlertKind::TlsHandshakeRefused, Facts::connection("dicom_tls", peer, "unknown issuer"));
    let facts = Facts { reason: "tls.cert: the certificate expired".into(), ..Facts::default() };
    alerts.alert(AlertKind::ConfigurationReloadFailed, facts.detail("file", "/etc/zenedge/tls/edge.pem"));
    let text = metrics.encode();
    assert!(text.contains("zenedge_security_alerts_total{kind=\"tls_handshake_refused\"} 2"), "{text}");
    assert!(text.contains("zenedge_security_alerts_total{kind=\"configuration_reload_failed\"} 1"), "{text}");
}
