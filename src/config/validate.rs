//! From the raw mirror to [`Config`]: every value checked against the contract (units,
//! ranges, addresses, AE titles…) with the key it belongs to; a bad value is recorded and
//! checking goes on, so one run of `zenedge check-config` reports every problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::check::{Checker, ae_title, each};
use super::*;
use super::{access, backup, forward, trust};
use crate::hl7::{Charset, FieldPath};

/// The mirror as a [`Config`], with every problem `c` collected so far and finds here.
pub(super) fn validate(raw: raw::RawConfig, mut c: Checker) -> Result<Config, ConfigError> {
    let site = Site {
        tenant_id: c.check("site.tenant_id", identifier(&raw.site.tenant_id)).unwrap_or_default(),
        hospital_id: c.check("site.hospital_id", identifier(&raw.site.hospital_id)).unwrap_or_default(),
        edge_id: c.check("site.edge_id", identifier(&raw.site.edge_id)).unwrap_or_default(),
    };
    let state_dir: PathBuf = c.check("store.state_dir", non_empty_path(&raw.store.state_dir)).unwrap_or_default();
    let store = StoreConfig {
        master_key_file: match raw.store.master_key_file.as_str() {
            "" => state_dir.join("master.key"),
            path => PathBuf::from(path),
        },
        seal: raw.store.seal,
        state_dir,
        disk_reserve: c
            .check("store.disk_reserve", units::disk_reserve(&raw.store.disk_reserve))
            .unwrap_or(DiskReserve::Bytes(0)),
        queue_depth: c.check("store.queue_depth", in_range(raw.store.queue_depth, 1, 1 << 20)).unwrap_or(1),
        max_batch: c.check("store.max_batch", in_range(raw.store.max_batch, 1, 1 << 16)).unwrap_or(1),
        cache_size: c.check("store.cache_size", cache_size(&raw.store.cache_size)).unwrap_or(1),
        value_dictionary_after: c
            .check("store.value_dictionary_after", dictionary_after(raw.store.value_dictionary_after))
            .unwrap_or(0),
    };
    let mllp = MllpConfig {
        listen: c.check("mllp.listen", optional_socket_addr(&raw.mllp.listen)).flatten(),
        tls_listen: c.check("mllp.tls_listen", optional_socket_addr(&raw.mllp.tls_listen)).flatten(),
        allow_from: each(&mut c, "mllp.allow_from", &raw.mllp.allow_from, trust::network),
        max_connections: c.check("mllp.max_connections", in_range(raw.mllp.max_connections, 1, 65_536)).unwrap_or(1),
        max_message_bytes: c.check("mllp.max_message_bytes", message_size(&raw.mllp.max_message_bytes)).unwrap_or(1),
        idle_timeout: c
            .check("mllp.idle_timeout", units::positive_duration(&raw.mllp.idle_timeout))
            .unwrap_or_default(),
        frame_timeout: c
            .check("mllp.frame_timeout", units::positive_duration(&raw.mllp.frame_timeout))
            .unwrap_or_default(),
        accession_from: field_paths(&mut c, &raw.mllp.accession_from),
        fallback_charset: c
            .check("mllp.fallback_charset", charset(&raw.mllp.fallback_charset))
            .unwrap_or(Charset::Iso8859_1),
        senders: trust::senders(&mut c, &raw.mllp.senders),
    };
    let dicom = DicomConfig {
        listen: c.check("dicom.listen", optional_socket_addr(&raw.dicom.listen)).flatten(),
        tls_listen: c.check("dicom.tls_listen", optional_socket_addr(&raw.dicom.tls_listen)).flatten(),
        ae_title: c.check("dicom.ae_title", ae_title(&raw.dicom.ae_title)).unwrap_or_default(),
        accept_any_called_ae: raw.dicom.accept_any_called_ae,
        calling_ae_allow: trust::calling_aes(&mut c, &raw.dicom.calling_ae_allow),
        accept_unknown_sop_classes: raw.dicom.accept_unknown_sop_classes,
        max_associations: c.check("dicom.max_associations", in_range(raw.dicom.max_associations, 1, 4096)).unwrap_or(1),
        max_pdu_length: c.check("dicom.max_pdu_length", pdu_length(&raw.dicom.max_pdu_length)).unwrap_or(16384),
        read_timeout: c
            .check("dicom.read_timeout", units::positive_duration(&raw.dicom.read_timeout))
            .unwrap_or_default(),
        pdu_timeout: c.check("dicom.pdu_timeout", units::positive_duration(&raw.dicom.pdu_timeout)).unwrap_or_default(),
        write_timeout: c
            .check("dicom.write_timeout", units::positive_duration(&raw.dicom.write_timeout))
            .unwrap_or_default(),
        stable_after: c
            .check("dicom.stable_after", units::positive_duration(&raw.dicom.stable_after))
            .unwrap_or_default(),
        worklist: raw.dicom.worklist,
        worklist_filter_by_calling_ae: raw.dicom.worklist_filter_by_calling_ae,
        worklist_show_completed: raw.dicom.worklist_show_completed,
        worklist_max_results: c
            .check("dicom.worklist_max_results", in_range(raw.dicom.worklist_max_results, 1, 1_000_000))
            .unwrap_or(1),
        flush: c.check("dicom.flush", flush_mode(&raw.dicom.flush)).unwrap_or(FlushMode::Shared),
        commitment_archives: Vec::new(),
    };
    let operator_token = c.check("http.operator_token", operator_token(&raw.http.operator_token)).unwrap_or_default();
    let http = HttpConfig {
        listen: c.check("http.listen", socket_addr(&raw.http.listen)).unwrap_or(UNSPECIFIED),
        tls: raw.http.tls,
        header_timeout: c
            .check("http.header_timeout", units::positive_duration(&raw.http.header_timeout))
            .unwrap_or_default(),
        max_header_bytes: c
            .check("http.max_header_bytes", access::header_bytes(&raw.http.max_header_bytes))
            .unwrap_or(access::MIN_HEADER_BYTES),
        clients: access::clients(&mut c, &raw.http.clients, operator_token.as_deref()),
        operator_token,
        metrics_open: raw.http.metrics_open,
        requests_per_second: c
            .check("http.requests_per_second", in_range(raw.http.requests_per_second as usize, 1, 1_000_000))
            .unwrap_or(1) as u32,
        auth_failures_per_minute: c
            .check("http.auth_failures_per_minute", in_range(raw.http.auth_failures_per_minute as usize, 1, 10_000))
            .unwrap_or(1) as u32,
    };
    let tls = trust::tls_config(&mut c, &raw.tls, &mllp, &dicom, &http);
    let sync = sync_config(&mut c, &raw.sync);
    let matching = MatchingConfig {
        consolidation_window: c
            .check("matching.consolidation_window", units::duration(&raw.matching.consolidation_window))
            .unwrap_or_default(),
        hospital_windows: raw
            .matching
            .hospital_windows
            .iter()
            .filter_map(|(hospital, window)| {
                let key = format!("matching.hospital_windows.{hospital}");
                c.check(&key, units::duration(window)).map(|w| (hospital.clone(), w))
            })
            .collect(),
    };
    let max_age = raw.retention.dicom_max_age.trim();
    let retention = RetentionConfig {
        dicom_max_age: if max_age.is_empty() {
            None
        } else {
            c.check("retention.dicom_max_age", units::positive_duration(max_age))
        },
        dicom_max_age_text: max_age.to_owned(),
        interval: c.check("retention.interval", units::positive_duration(&raw.retention.interval)).unwrap_or_default(),
    };
    let forward = forward::forward_config(&mut c, &raw.forward, &dicom.ae_title);
    let dicom = DicomConfig { commitment_archives: forward.commitment_archives(), ..dicom };
    let audit = AuditConfig {
        syslog: syslog_target(&mut c, raw.audit.syslog.trim(), &sync),
        retention: c.check("audit.retention", units::positive_duration(&raw.audit.retention)).unwrap_or_default(),
        journal: raw.audit.journal,
    };
    let backup = backup::backup_config(&mut c, &raw.backup, &store.state_dir);
    let daemon = DaemonConfig {
        shutdown_grace: c
            .check("daemon.shutdown_grace", units::duration(&raw.daemon.shutdown_grace))
            .unwrap_or_default(),
        log_level: c.check("daemon.log_level", log_level(&raw.daemon.log_level)).unwrap_or_default(),
    };
    let listeners = [
        ("mllp.listen", mllp.listen),
        ("mllp.tls_listen", mllp.tls_listen),
        ("dicom.listen", dicom.listen),
        ("dicom.tls_listen", dicom.tls_listen),
        ("http.listen", Some(http.listen)),
    ];
    let listeners: Vec<(&str, SocketAddr)> =
        listeners.into_iter().filter_map(|(key, addr)| addr.map(|a| (key, a))).collect();
    listener_clashes(&mut c, &listeners);
    if c.problems.is_empty() {
        Ok(Config { site, store, mllp, dicom, http, tls, matching, sync, retention, forward, audit, backup, daemon })
    } else {
        Err(ConfigError::Invalid(c.problems))
    }
}

/// `audit.syslog`: empty, `udp://host:port` or `tls://host:port` (which needs the sync's TLS
/// files: the collector is verified with `sync.ca_file`, the edge presents `sync.client_cert`).
fn syslog_target(c: &mut Checker, text: &str, sync: &SyncConfig) -> Option<SyslogTarget> {
    if text.is_empty() {
        return None;
    }
    let key = "audit.syslog";
    let Some((scheme, rest)) = text.split_once("://") else {
        c.problem(key, format!("{text:?} is not udp://host:port or tls://host:port"));
        return None;
    };
    let parsed = rest.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        (!host.is_empty() && !host.contains('/')).then(|| (host.to_owned(), port))
    });
    let Some((host, port)) = parsed else {
        c.problem(key, format!("{text:?} needs a host and a port, e.g. udp://collector.example:514"));
        return None;
    };
    match scheme {
        "udp" => Some(SyslogTarget::Udp { host, port }),
        "tls" => {
            let files = sync.hub.as_ref().is_some_and(|h| {
                h.url.starts_with("https://")
                    && h.ca_file.is_some()
                    && h.client_cert.is_some()
                    && h.client_key.is_some()
            });
            if !files {
                c.problem(
                    key,
                    "tls:// uses the sync's TLS identity: set sync.hub_url (https), sync.ca_file, sync.client_cert and \
                     sync.client_key",
                );
                return None;
            }
            Some(SyslogTarget::Tls { host, port })
        }
        other => {
            c.problem(key, format!("unknown scheme {other:?}; use udp:// or tls://"));
            None
        }
    }
}

fn sync_config(c: &mut Checker, raw: &raw::RawSync) -> SyncConfig {
    let duration = |c: &mut Checker, key: &str, value: &str| {
        c.check(&format!("sync.{key}"), units::positive_duration(value)).unwrap_or(Duration::from_secs(1))
    };
    SyncConfig {
        hub: c.check("sync.hub_url", hub_endpoint(raw)).flatten(),
        batch_max_events: c.check("sync.batch_max_events", in_range(raw.batch_max_events, 1, 100_000)).unwrap_or(1),
        batch_max_bytes: c
            .check(
                "sync.batch_max_bytes",
                units::size(&raw.batch_max_bytes).and_then(|b| in_range(b as usize, 1024, 1 << 30)),
            )
            .unwrap_or(1024),
        linger: c.check("sync.linger", units::duration(&raw.linger)).unwrap_or_default(),
        connect_timeout: duration(c, "connect_timeout", &raw.connect_timeout),
        timeout: duration(c, "timeout", &raw.timeout),
        retry_base: duration(c, "retry_base", &raw.retry_base),
        retry_cap: duration(c, "retry_cap", &raw.retry_cap),
        breaker_failures: c
            .check("sync.breaker_failures", in_range(raw.breaker_failures as usize, 1, 1000))
            .unwrap_or(1) as u32,
        breaker_open: duration(c, "breaker_open", &raw.breaker_open),
        position_check_interval: duration(c, "position_check_interval", &raw.position_check_interval),
    }
}

/// The hub's URL and TLS files. HTTPS needs the CA bundle and the client certificate and
/// key (mutual TLS); plain HTTP only with `allow_plain_http` (tests, a hub on the same box).
fn hub_endpoint(raw: &raw::RawSync) -> Result<Option<HubEndpoint>, String> {
    let url = raw.hub_url.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(None);
    }
    let path = |value: &str| (!value.trim().is_empty()).then(|| PathBuf::from(value));
    let endpoint = HubEndpoint {
        url: url.to_owned(),
        ca_file: path(&raw.ca_file),
        client_cert: path(&raw.client_cert),
        client_key: path(&raw.client_key),
    };
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        let missing: Vec<_> = [
            ("sync.ca_file", endpoint.ca_file.is_none()),
            ("sync.client_cert", endpoint.client_cert.is_none()),
            ("sync.client_key", endpoint.client_key.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, missing)| missing.then_some(key))
        .collect();
        if !missing.is_empty() {
            return Err(format!("an https hub needs {} (mutual TLS)", missing.join(", ")));
        }
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        if !raw.allow_plain_http {
            return Err(format!(
                "{url:?} is plain HTTP: events would cross the network unencrypted; use https:// or set \
                 sync.allow_plain_http = true"
            ));
        }
        rest
    } else {
        return Err(format!("{url:?} must start with https:// (or http:// with sync.allow_plain_http)"));
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err(format!("{url:?} is not a base URL like \"https://hub.example:8443\""));
    }
    Ok(Some(endpoint))
}

fn operator_token(value: &str) -> Result<Option<String>, String> {
    match value.trim() {
        "" => Ok(None),
        t if t.len() < 16 => Err("must be at least 16 characters (or empty to disable operator actions)".into()),
        t if !t.bytes().all(|b| b.is_ascii_graphic()) => Err("must be printable ASCII without spaces".into()),
        t => Ok(Some(t.to_owned())),
    }
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Site identifiers go into keys, file names and URLs: keep them to a safe alphabet.
fn identifier(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(value.to_owned()) } else { Err(format!("{value:?} must be 1-64 characters of A-Z a-z 0-9 . _ -")) }
}

fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    if value.trim().is_empty() { Err("must not be empty".into()) } else { Ok(PathBuf::from(value)) }
}

/// Events before the first compression dictionary: 0 (never) or at least 100 (fewer do not
/// train one that pays).
fn dictionary_after(value: u64) -> Result<u64, String> {
    match value {
        1..100 => Err(format!("{value} events are too few to train on: at least 100, or 0 for never")),
        n => Ok(n),
    }
}

fn flush_mode(value: &str) -> Result<FlushMode, String> {
    match value {
        "shared" => Ok(FlushMode::Shared),
        "each" => Ok(FlushMode::Each),
        other => Err(format!("{other:?} is not a flush mode; use \"shared\" or \"each\"")),
    }
}

fn in_range(value: usize, min: usize, max: usize) -> Result<usize, String> {
    if (min..=max).contains(&value) { Ok(value) } else { Err(format!("{value} is out of range ({min}..={max})")) }
}

fn socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("{value:?} is not an address:port (e.g. \"127.0.0.1:2575\", \"[::]:2575\")"))
}

/// An address, or `None` for an empty value (the listener is off).
fn optional_socket_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    socket_addr(value.trim()).map(Some)
}

fn message_size(value: &str) -> Result<usize, String> {
    let bytes = units::size(value)?;
    if !(1024..=(1 << 30)).contains(&bytes) {
        return Err(format!("{value:?} must be between 1KiB and 1GiB"));
    }
    Ok(bytes as usize)
}

fn pdu_length(value: &str) -> Result<u32, String> {
    let bytes = units::size(value)?;
    if !(4096..=(16 << 20)).contains(&bytes) {
        return Err(format!("{value:?} must be between 4KiB and 16MiB"));
    }
    Ok(bytes as u32)
}

fn cache_size(value: &str) -> Result<usize, String> {
    let bytes = units::size(value)?;
    if !((1 << 20)..=(64 << 30)).contains(&bytes) {
        return Err(format!("{value:?} must be between 1MiB and 64GiB"));
    }
    Ok(bytes as usize)
}

fn field_paths(c: &mut Checker, values: &[String]) -> Vec<FieldPath> {
    if values.is_empty() {
        c.problem("mllp.accession_from", "needs at least one location, e.g. [\"OBR-18\"]");
    }
    each(c, "mllp.accession_from", values, |v| v.parse::<FieldPath>().map_err(|e| format!("{v:?}: {e}")))
}

/// Two listeners on one address would start the daemon into `Address already in use`: each
/// clash is a problem of the later key, naming the earlier one.
fn listener_clashes(c: &mut Checker, listeners: &[(&str, SocketAddr)]) {
    for (i, (key, addr)) in listeners.iter().enumerate() {
        if let Some((other, other_addr)) = listeners[..i].iter().find(|(_, earlier)| same_socket(*earlier, *addr)) {
            c.problem(
                key,
                format!(
                    "{addr} clashes with {other} = {other_addr:?}: two listeners cannot share a port on one address \
                     (the daemon would fail with \"Address already in use\"); give each its own port"
                ),
            );
        }
    }
}

/// Whether binding both would clash: the same port (not 0) on the same address, or on a
/// wildcard that covers the other (`0.0.0.0` covers IPv4; `[::]` covers IPv4 too, since
/// Linux binds it dual-stack by default).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let covers =
        |wide: std::net::IpAddr, other: std::net::IpAddr| wide.is_unspecified() && (wide.is_ipv6() || other.is_ipv4());
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

fn charset(value: &str) -> Result<Charset, String> {
    value.parse::<Charset>().map_err(|_| {
        format!("{value:?} is not a supported HL7 charset (MSH-18 names such as \"8859/1\", \"UNICODE UTF-8\")")
    })
}

/// A tracing `EnvFilter` of levels per target. Span and field filters (`[span{field=value}]`)
/// are refused: tracing-subscriber compiles a field value into a regular expression, and
/// building one took minutes for a 100-character value (found by the `config_toml` fuzz
/// target), which would hang `check-config` and start-up. `RUST_LOG` still takes them.
fn log_level(value: &str) -> Result<String, String> {
    if value.contains('[') {
        return Err(format!(
            "{value:?}: span and field filters ([...]) are not accepted here; set levels per target, \
             e.g. \"info,zenedge::sync=debug\" (RUST_LOG takes the full syntax)"
        ));
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|e| format!("{value:?} is not a log filter ({e})"))
}
