//! Who may do what through the API.
//!
//! * Every route declares what it needs in one place, the route table of [`super::routes`]:
//!   [`Access::Open`] (`/healthz`, `/readyz` only), [`Access::Scope`], or
//!   [`Access::Metrics`] (scope `status`, or open with `http.metrics_open`). A path that
//!   matches no route needs a valid token too before it is answered 404, so the API's shape
//!   is not told to anonymous callers.
//! * A caller presents `Authorization: Bearer <token>`. The SHA-256 of the token is compared
//!   with every client's hash in constant time, all of them every time (no early exit, so the
//!   time does not tell which prefix matched). Clients are the config's `[[http.clients]]`,
//!   `http.operator_token` as `operator-token` (scope `operator`), and the local operator
//!   (every scope) whose token the daemon writes at start to a file only root and the service
//!   user can read ([`crate::operator::local_token`]).
//! * A browser cannot be told to send a bearer token, so the pages a person opens (the
//!   status page, [`super::routes::BROWSER_PATHS`]) also take HTTP Basic credentials: any
//!   user name, the client token as the password. The token is checked by the same code as a
//!   bearer token (constant time, rate-limited, failures audited); only those pages answer a
//!   401 with `WWW-Authenticate: Basic`, so the browser asks for it (the API's 401s say
//!   `Bearer` and no browser prompt appears for them). Basic credentials travel in the clear
//!   like a bearer token: over anything but loopback, turn on `http.tls`.
//! * No token: 401 with `WWW-Authenticate: Bearer`. An unknown token: 401, and a failed
//!   authentication of its source address; past `http.auth_failures_per_minute` of those,
//!   every request that presents a token is answered 429 with `Retry-After` until the minute
//!   has refilled (a guesser gets a few tries a minute, a legitimate client a clear answer).
//!   A known token without the route's scope: 403 naming the scope. All with a JSON error.
//!   Each unknown token is recorded in the audit trail (User Authentication, failed) before
//!   its 401 leaves; past the limit nothing more is tried, so a flood writes ten records a
//!   minute per address at most.
//! * A client with its own `requests_per_second` is held to it across all its addresses
//!   (429 with `Retry-After`), besides the per-address limit everyone has.
//! * After authentication the request carries a [`Caller`] extension (the client's name and
//!   scopes, the connection's source address, how it authenticated) for the handlers and the
//!   audit trail.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::limits::{ClientRate, RateTable};
use crate::config::{ApiClient, HttpConfig, Scope, Scopes, token_sha256};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (load balancers, systemd): `/healthz` and `/readyz` only.
    Open,
    /// A client with this scope.
    Scope(Scope),
    /// `/metrics`: scope `status`, or anyone with `http.metrics_open`.
    Metrics,
    /// Any known client (a path that matches no route).
    Authenticated,
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A configured client's bearer token.
    Token,
    /// The local operator's token from the file in the state directory (the operator CLI
    /// run by root or the service user).
    LocalToken,
    /// Nobody: an open route ([`Access::Open`], or `/metrics` with `http.metrics_open`).
    Anonymous,
}

/// Who made a request: a request extension on every request a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client's name (`[[http.clients]]`), `operator-token`, `local`, or `anonymous`.
    pub client: String,
    pub scopes: Scopes,
    /// The connection's peer address (unspecified for a request without a connection).
    pub source: SocketAddr,
    pub via: Via,
}

/// The clients and the per-source tables of failed authentications and requests.
#[derive(Debug)]
pub struct AccessControl {
    clients: Vec<ApiClient>,
    /// Each client's own rate, by its index in `clients` (`None`: no limit of its own).
    client_rates: Vec<Option<ClientRate>>,
    /// SHA-256 of the local operator's token; `None`: no local token (tests).
    local: Option<[u8; 32]>,
    metrics_open: bool,
    failures: RateTable,
    requests: RateTable,
}

/// The name of the local operator as a client.
pub const LOCAL_CLIENT: &str = "local";

impl AccessControl {
    /// The rules of `http`; `local` is the hash of the local operator's token.
    pub fn new(http: &HttpConfig, local: Option<[u8; 32]>) -> AccessControl {
        let failures = http.auth_failures_per_minute as f64;
        AccessControl {
            clients: http.clients.clone(),
            client_rates: http.clients.iter().map(|c| c.requests_per_second.map(ClientRate::new)).collect(),
            local,
            metrics_open: http.metrics_open,
            failures: RateTable::new(failures / 60.0, failures),
            requests: RateTable::new(http.requests_per_second as f64, http.requests_per_second as f64),
        }
    }

    /// The client whose token this is: its name, scopes, how it authenticated, and its own
    /// rate if it has one.
    fn authenticate(&self, token: &str) -> Option<(String, Scopes, Via, Option<&ClientRate>)> {
        let hash = token_sha256(token.as_bytes());
        let mut found = None;
        for (i, client) in self.clients.iter().enumerate() {
            if constant_time_eq(&hash, &client.token_sha256) {
                found = Some((client.name.clone(), client.scopes, Via::Token, self.client_rates[i].as_ref()));
            }
        }
        if let Some(local) = &self.local
            && constant_time_eq(&hash, local)
        {
            found = Some((LOCAL_CLIENT.to_owned(), Scopes::all(), Via::LocalToken, None));
        }
        found
    }
}

/// The connection's peer, when the request came over one.
pub(super) fn source(request: &Request) -> SocketAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |ConnectInfo(addr)| *addr)
}

/// Every request, first: the per-source request rate (`http.requests_per_second`).
pub(super) async fn limit_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let source = source(&request);
    if let Err(wait) = state.access.requests.take(source.ip()) {
        state.metrics.http_refused("rate_limited");
        return too_many(wait, "too many requests from this address: slow down");
    }
    next.run(request).await
}

/// Every route's guard: `access` decides, then the request goes on with its [`Caller`].
/// With `browser`, HTTP Basic credentials are taken too and a 401 asks for them.
pub(super) async fn guard(
    access: Access,
    browser: bool,
    state: ApiState,
    mut request: Request,
    next: Next,
) -> Response {
    let source = source(&request);
    let control = &state.access;
    let open = access == Access::Open || (access == Access::Metrics && control.metrics_open);
    if open {
        let anonymous = Caller { client: "anonymous".into(), scopes: Scopes::default(), source, via: Via::Anonymous };
        request.extensions_mut().insert(anonymous);
        return next.run(request).await;
    }
    let presented = bearer(request.headers()).or_else(|| basic(request.headers()).filter(|_| browser));
    let Some(token) = presented else {
        state.metrics.http_refused("no_token");
        if browser {
            return challenge(
                "this page needs a client token with the scope \"status\": any user name, the token as the password",
            );
        }
        return unauthorized("this path needs a client token: Authorization: Bearer <token>");
    };
    let token = token.as_str();
    if let Err(wait) = control.failures.check(source.ip()) {
        state.metrics.http_refused("rate_limited");
        return too_many(wait, "too many failed authentications from this address");
    }
    let Some((client, scopes, via, rate)) = control.authenticate(token) else {
        let _ = control.failures.take(source.ip());
        state.metrics.http_refused("bad_token");
        tracing::warn!(%source, path = request.uri().path(), "API request with an unknown token refused");
        record_failure(&state, source, request.uri().path()).await;
        if browser {
            return challenge("the token is not one of a configured client");
        }
        return unauthorized("the token is not one of a configured client");
    };
    if let Some(Err(wait)) = rate.map(ClientRate::take) {
        state.metrics.http_refused("rate_limited");
        return too_many(wait, &format!("too many requests from client {client:?}: slow down"));
    }
    let needed = match access {
        Access::Scope(scope) => Some(scope),
        Access::Metrics => Some(Scope::Status),
        Access::Open | Access::Authenticated => None,
    };
    if let Some(scope) = needed.filter(|s| !scopes.contains(*s)) {
        state.metrics.http_refused("scope");
        tracing::info!(client, %source, path = request.uri().path(), scope = scope.name(), "API request refused: scope");
        let message = format!("client {client:?} lacks the scope {:?} this path needs", scope.name());
        return (StatusCode::FORBIDDEN, Json(serde_json::json!({ "error": message }))).into_response();
    }
    request.extensions_mut().insert(Caller { client, scopes, source, via });
    next.run(request).await
}

/// A failed authentication into the audit trail (User Authentication, Login, failure) before
/// the 401 is sent; at most `http.auth_failures_per_minute` of them per source address. A
/// record that cannot be committed (below the disk reserve) is logged, and the answer is
/// still 401: nothing is given away by a refusal.
async fn record_failure(state: &ApiState, source: SocketAddr, path: &str) {
    let who = crate::audit::Requester { client: None, source: Some(source) };
    let record = crate::audit::kinds::api_authentication_failed(&state.edge_id, &who, path, jiff::Timestamp::now());
    if let Err(e) = crate::audit::record(&state.log, vec![record]).await {
        tracing::warn!(error = %e, %source, "failed API authentication not recorded in the audit trail");
    }
}

/// The bearer token of `headers`, if there is one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The password of HTTP Basic credentials in `headers` (RFC 7617: base64 of `user:password`),
/// if there are any; the user name is not looked at.
fn basic(headers: &HeaderMap) -> Option<String> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    Some(password.to_owned()).filter(|p| !p.is_empty())
}

/// A 401 that makes a browser ask for a user name and password.
fn challenge(message: &str) -> Response {
    let body = Json(serde_json::json!({ "error": message }));
    let realm = "Basic realm=\"zenedge\", charset=\"UTF-8\"";
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, realm)], body).into_response()
}

fn unauthorized(message: &str) -> Response {
    let body = Json(serde_json::json!({ "error": message }));
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
}

fn too_many(wait: std::time::Duration, message: &str) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let body = Json(serde_json::json!({ "error": message, "retry_after_seconds": seconds }));
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, seconds.to_string())], body).into_response()
}

/// Equal, in a time that depends on the lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
