//! The API over a fresh log, without a socket, for the unit tests of its handlers and its
//! access rules.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::{AccessControl, ApiState};
use crate::config::{Config, DiskReserve, Site};
use crate::log::{DiskGuard, Log, LogOptions};
use crate::projections::Projections;
use crate::sync::SyncShared;
use crate::telemetry::Metrics;

/// The token of the client `everything` (every scope).
pub(super) const ALL: &str = "all-scopes-token-0123456789";
/// The token of the client `status-reader` (scope `status` only).
pub(super) const STATUS: &str = "status-token-0123456789";
/// The token of the client `reader` (scope `read` only).
pub(super) const READ: &str = "read-token-0123456789";
/// The local operator's token.
pub(super) const LOCAL: &str = "local-token-0123456789";

pub(super) struct Api {
    pub _dir: tempfile::TempDir,
    pub log: Log<Projections>,
    pub state: ApiState,
}

/// The `[http]` section of a test config with the three clients, `extra` added.
pub(super) fn http_config(extra: &str) -> crate::config::HttpConfig {
    let client = |name: &str, token: &str, scopes: &str| {
        let hash = crate::ids::hex(&crate::config::token_sha256(token.as_bytes()));
        format!("[[http.clients]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nscopes = [{scopes}]\n")
    };
    let text = format!(
        "[site]\ntenant_id = \"t1\"\nhospital_id = \"h1\"\nedge_id = \"e1\"\n[http]\n{extra}{}{}{}",
        client("everything", ALL, "\"read\", \"status\", \"operator\", \"audit\", \"export\""),
        client("status-reader", STATUS, "\"status\""),
        client("reader", READ, "\"read\""),
    );
    Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}")).http
}

/// The API over a fresh log, with `operator_token` if given.
pub(super) async fn api(operator_token: Option<&str>) -> Api {
    let extra = operator_token.map(|t| format!("operator_token = \"{t}\"\n")).unwrap_or_default();
    api_with(&extra).await
}

/// The API over a fresh log, with `extra` lines in its `[http]` section.
pub(super) async fn api_with(extra: &str) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        site: Site { tenant_id: "t1".into(), hospital_id: "h1".into(), edge_id: "e1".into() },
        ..crate::domain::test_support::options(dir.path())
    };
    let metrics = Arc::new(Metrics::new());
    let log = crate::domain::test_support::open(&options, metrics.clone()).unwrap();
    let local = crate::config::token_sha256(LOCAL.as_bytes());
    let state = ApiState {
        forward: Arc::default(),
        reader: log.reader(),
        writer: log.handle().state.clone(),
        log: log.handle(),
        disk: DiskGuard::new(dir.path().to_owned(), DiskReserve::Bytes(0)),
        metrics,
        shutdown: tokio_util::sync::CancellationToken::new(),
        database_path: options.path.clone(),
        edge_id: "e1".into(),
        audit_source: crate::audit::AuditSource { source_id: "e1".into(), site_id: "h1".into() },
        syslog: None,
        sync: Arc::new(SyncShared::new(Some("https://hub.test".into()), 0)),
        access: Arc::new(AccessControl::new(&http_config(extra), Some(local))),
        backups: Arc::new(tokio::sync::Semaphore::new(1)),
        scheduled_backups: Arc::new(crate::backups::BackupShared::new(&crate::config::BackupConfig::default())),
        journal: None,
    };
    Api { _dir: dir, log, state }
}

/// One request through the router, no socket: its status and JSON body (`Null` if none).
/// hyper-util's adapter drives the router (a tower service).
pub(super) async fn call(
    state: &ApiState,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = call_full(state, method, path, token.map(|t| format!("Bearer {t}")).as_deref()).await;
    (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// One request with `authorization` as the header's whole value: status, headers, body.
pub(super) async fn call_full(
    state: &ApiState,
    method: &str,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use hyper::service::Service;
    let mut request = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let service = hyper_util::service::TowerToHyperService::new(super::router(state.clone()));
    let response = service.call(request.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}
