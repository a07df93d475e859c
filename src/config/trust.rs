//! The keys that decide who may connect and send: the `[tls]` identity, the source-network
//! allow-list and sender bindings of `[mllp]`, the calling AE entries of `[dicom]` (which may
//! name a client certificate), and the warnings about plain listeners on the network.
//!
//! What is checked here is the shape of the values and how they fit together (a TLS listener
//! needs `[tls]` files; client certificates need a `client_ca`). Whether the files themselves
//! are usable (they parse, they are valid now, the key matches) is checked before start and by
//! `check-config` in `crate::tls`, which reads them.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::check::{Checker, ae_title, each};
use super::raw::{RawSender, RawTls};
use super::{
    CallingAe, CertificateMatch, Config, DicomConfig, HttpConfig, MllpConfig, MllpSender, TlsConfig, TlsFiles,
};

/// `[tls]`, checked against the listeners that use it.
pub(super) fn tls_config(
    c: &mut Checker,
    raw: &RawTls,
    mllp: &MllpConfig,
    dicom: &DicomConfig,
    http: &HttpConfig,
) -> TlsConfig {
    let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value.trim()));
    let (cert, key, client_ca, crl) = (path(&raw.cert), path(&raw.key), path(&raw.client_ca), path(&raw.crl));
    let handshake_timeout = c
        .check("tls.handshake_timeout", super::units::positive_duration(&raw.handshake_timeout))
        .unwrap_or(std::time::Duration::from_secs(10));
    let intake: Vec<&str> =
        [("mllp.tls_listen", mllp.tls_listen.is_some()), ("dicom.tls_listen", dicom.tls_listen.is_some())]
            .into_iter()
            .filter_map(|(key, on)| on.then_some(key))
            .collect();
    let mut users = intake.clone();
    if http.tls {
        users.push("http.tls");
    }
    let served_by = users.join(", ");
    for (name, value) in [("tls.cert", &cert), ("tls.key", &key)] {
        if value.is_none() && !users.is_empty() {
            c.problem(name, format!("must be set: {served_by} serve TLS with this identity"));
        }
    }
    if cert.is_some() != key.is_some() && users.is_empty() {
        let missing = if cert.is_none() { "tls.cert" } else { "tls.key" };
        c.problem(missing, "must be set with the other of tls.cert and tls.key");
    }
    if client_ca.is_none() && !intake.is_empty() {
        c.problem(
            "tls.client_ca",
            format!(
                "must be set: {} require client certificates, issued by the CAs in this file",
                intake.join(" and ")
            ),
        );
    }
    if crl.is_some() && client_ca.is_none() {
        c.problem("tls.crl", "needs tls.client_ca: it revokes client certificates of those CAs");
    }
    let files = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key, client_ca, crl }),
        _ => None,
    };
    TlsConfig { files, handshake_timeout }
}

/// A network (`192.0.2.0/24`, `2001:db8::/32`) or a single address.
pub(super) fn network(value: &str) -> Result<ipnet::IpNet, String> {
    let value = value.trim();
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{value:?} is not an address or network (e.g. 192.0.2.7, 192.0.2.0/24)"))
}

/// A certificate as written in the config: `sha256:<hex>` (colons allowed) or a name.
pub(super) fn certificate(value: &str) -> Result<CertificateMatch, String> {
    let value = value.trim();
    if let Some(hex) = value.strip_prefix("sha256:").or_else(|| value.strip_prefix("SHA256:")) {
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        return crate::ids::sha256_from_hex(&digits.to_ascii_lowercase())
            .filter(|_| digits.len() == 64)
            .map(CertificateMatch::Sha256)
            .ok_or_else(|| format!("{value:?}: a fingerprint is sha256: and 64 hex digits (colons allowed)"));
    }
    let printable = value.chars().all(|c| !c.is_control());
    if value.is_empty() || value.len() > 255 || !printable {
        return Err(format!("{value:?} is not a certificate name (1-255 printable characters) or sha256:<hex>"));
    }
    Ok(CertificateMatch::Name(value.to_owned()))
}

/// `[[mllp.senders]]`, each problem under `mllp.senders[i].<key>`.
pub(super) fn senders(c: &mut Checker, raw: &[RawSender]) -> Vec<MllpSender> {
    let mut out = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let key = |name: &str| format!("mllp.senders[{i}].{name}");
        let certificate = match s.certificate.trim() {
            "" => None,
            text => c.check(&key("certificate"), certificate(text)),
        };
        let from = each(c, &key("from"), &s.from, network);
        if s.certificate.trim().is_empty() && s.from.is_empty() {
            c.problem(&format!("mllp.senders[{i}]"), "names no connection: set certificate, from, or both");
        }
        let name = match s.name.trim() {
            "" => format!("senders[{i}]"),
            name => name.to_owned(),
        };
        let values = |list: &[String]| list.iter().map(|v| v.trim().to_owned()).collect::<Vec<_>>();
        out.push(MllpSender {
            name,
            certificate,
            from,
            sending_applications: values(&s.sending_application),
            sending_facilities: values(&s.sending_facility),
        });
    }
    out
}

/// `dicom.calling_ae_allow`: each entry a string (`AE`, `AE@address`, `AE@network/prefix`)
/// or a table `{ ae = "AE", from = "...", certificate = "..." }`.
pub(super) fn calling_aes(c: &mut Checker, values: &[toml::Value]) -> Vec<CallingAe> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, value)| c.check(&format!("dicom.calling_ae_allow[{i}]"), calling_ae(value)))
        .collect()
}

fn calling_ae(value: &toml::Value) -> Result<CallingAe, String> {
    match value {
        toml::Value::String(text) => calling_ae_text(text),
        toml::Value::Table(table) => {
            let text = |key: &str| match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("{key} must be a string")),
            };
            if let Some(unknown) = table.keys().find(|k| !["ae", "from", "certificate"].contains(&k.as_str())) {
                return Err(format!("unknown key {unknown:?}; an entry takes ae, from, certificate"));
            }
            let ae = text("ae")?.ok_or("a table entry needs ae = \"AE TITLE\"")?;
            let from = text("from")?.map(network).transpose()?;
            let certificate = text("certificate")?.map(certificate).transpose()?;
            Ok(CallingAe { ae_title: ae_title(ae)?, from, certificate })
        }
        _ => Err("must be a string (\"AE\", \"AE@192.0.2.0/24\") or a table { ae, from, certificate }".into()),
    }
}

/// `AE` or `AE@192.0.2.7` or `AE@192.0.2.0/24`.
fn calling_ae_text(value: &str) -> Result<CallingAe, String> {
    let (ae, from) = match value.split_once('@') {
        Some((ae, addr)) => (ae, Some(addr)),
        None => (value, None),
    };
    let ae_title = ae_title(ae)?;
    let from = from.map(|addr| network(addr).map_err(|e| format!("{value:?}: {e}"))).transpose()?;
    Ok(CallingAe { ae_title, from, certificate: None })
}

/// What `check-config` and the start warn about.
pub(super) fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let plain = [
        ("mllp.listen", config.mllp.listen, "HL7 messages", "mllp.tls_listen"),
        ("dicom.listen", config.dicom.listen, "DICOM instances", "dicom.tls_listen"),
        ("http.listen", (!config.http.tls).then_some(config.http.listen), "API requests", "http.tls = true"),
    ];
    for (key, addr, what, instead) in plain {
        if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
            let how = if key == "http.listen" {
                "unencrypted (client tokens and patient data in clear)"
            } else {
                "unencrypted and unauthenticated"
            };
            out.push(format!(
                "{key}: {addr} takes {what} {how} from the network; prefer {instead} \
                 (and limit who may connect with the firewall{})",
                if key == "mllp.listen" { " and mllp.allow_from" } else { "" }
            ));
        }
    }
    if config.mllp.listen.is_none() && config.mllp.tls_listen.is_none() {
        out.push("mllp.listen, mllp.tls_listen: both are off: no HL7 message can arrive".into());
    }
    if config.dicom.listen.is_none() && config.dicom.tls_listen.is_none() {
        out.push("dicom.listen, dicom.tls_listen: both are off: no DICOM instance can arrive".into());
    }
    let bound = |what: &str, key: String, listen: Option<SocketAddr>| {
        listen.is_none().then(|| format!("{key}: names a certificate, but {what} is off: it can never match"))
    };
    for (i, sender) in config.mllp.senders.iter().enumerate() {
        if sender.certificate.is_some() {
            out.extend(bound("mllp.tls_listen", format!("mllp.senders[{i}]"), config.mllp.tls_listen));
        }
    }
    for (i, entry) in config.dicom.calling_ae_allow.iter().enumerate() {
        if entry.certificate.is_some() {
            out.extend(bound("dicom.tls_listen", format!("dicom.calling_ae_allow[{i}]"), config.dicom.tls_listen));
        }
    }
    out
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
