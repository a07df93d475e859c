//! `[http]` access: the named API clients (`[[http.clients]]`), their scopes, and the
//! deprecated `operator_token` turned into one of them. What a scope opens is decided in
//! [`crate::api`]; here only what an admin may write.
//!
//! A client's token is never in the config, only its SHA-256 (64 hex digits): a leaked
//! config file does not leak a working token, and `zenedge token new` prints both.

use sha2::{Digest, Sha256};

use super::check::Checker;
use super::raw::RawClient;
use super::{HttpConfig, units};

/// The smallest `http.max_header_bytes` (hyper reads at least this much at once).
pub(super) const MIN_HEADER_BYTES: usize = 8192;
/// The name under which `http.operator_token` is served.
pub const OPERATOR_TOKEN_CLIENT: &str = "operator-token";

/// What a client may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything with patient data: events and their stream, studies, orders, cases,
    /// matches, unmatched lists.
    Read,
    /// Health details and status without patient data (`/api/v1/status`, `/metrics`).
    Status,
    /// Operator actions: dead letters, sync fork, backup.
    Operator,
    /// Reading the audit trail.
    Audit,
    /// A patient's data export (`/api/v1/patients/{id}/export`), together with `read`.
    Export,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Status, Scope::Operator, Scope::Audit, Scope::Export];

    /// The scope's name in the config and in answers.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Status => "status",
            Scope::Operator => "operator",
            Scope::Audit => "audit",
            Scope::Export => "export",
        }
    }

    pub fn parse(text: &str) -> Result<Scope, String> {
        Scope::ALL.into_iter().find(|s| s.name() == text.trim()).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
            format!("{text:?} is not a scope; the scopes are {}", known.join(", "))
        })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope (the local operator's).
    pub fn all() -> Scopes {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes' names, in [`Scope::ALL`] order.
    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL.into_iter().filter(|s| self.contains(*s)).map(Scope::name).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Scopes {
        Scopes(iter.into_iter().fold(0, |bits, s| bits | s.bit()))
    }
}

/// One API client: who it is, the hash of its token, what it may reach.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiClient {
    /// Named in the audit trail and the logs (1-64 characters of `A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// SHA-256 of the token the client presents as `Authorization: Bearer <token>`.
    pub token_sha256: [u8; 32],
    pub scopes: Scopes,
    /// The client's own request rate (all its addresses together); `None`: only the
    /// per-address limit.
    pub requests_per_second: Option<u32>,
}

/// The hash never printed whole: it is not a secret, but a log is no place for it.
impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient").field("name", &self.name).field("scopes", &self.scopes.names()).finish()
    }
}

/// SHA-256 of `token`.
pub fn token_sha256(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

pub(super) fn header_bytes(text: &str) -> Result<usize, String> {
    let bytes = units::size(text)?;
    if (MIN_HEADER_BYTES as u64..=(1 << 20)).contains(&bytes) {
        Ok(bytes as usize)
    } else {
        Err(format!("{text:?} is out of range (8KiB..=1MiB)"))
    }
}

/// `[[http.clients]]`, then `operator_token` as the client `operator-token` (scope
/// `operator`). Names and token hashes must be unique.
pub(super) fn clients(c: &mut Checker, raw: &[RawClient], operator_token: Option<&str>) -> Vec<ApiClient> {
    let mut out: Vec<ApiClient> = Vec::new();
    for (i, client) in raw.iter().enumerate() {
        let key = |name: &str| format!("http.clients[{i}].{name}");
        let name = c.check(&key("name"), client_name(&client.name));
        let hash = c.check(&key("token_sha256"), sha256_hex(&client.token_sha256));
        let scopes: Vec<Scope> = super::check::each(c, &key("scopes"), &client.scopes, Scope::parse);
        if client.scopes.is_empty() {
            c.problem(&key("scopes"), "empty: give at least one of read, status, operator, audit");
        }
        let (Some(name), Some(token_sha256)) = (name, hash) else { continue };
        if out.iter().any(|o| o.name == name) {
            c.problem(&key("name"), format!("{name:?} is the name of another client"));
        }
        if out.iter().any(|o| o.token_sha256 == token_sha256) {
            c.problem(&key("token_sha256"), "is the hash of another client's token: give each client its own");
        }
        let rate = match client.requests_per_second {
            0 => None,
            n if n <= 1_000_000 => Some(n),
            n => {
                c.problem(&key("requests_per_second"), format!("{n} is out of range (0 for none, up to 1000000)"));
                None
            }
        };
        out.push(ApiClient { name, token_sha256, scopes: scopes.into_iter().collect(), requests_per_second: rate });
    }
    if let Some(token) = operator_token {
        out.push(ApiClient {
            name: OPERATOR_TOKEN_CLIENT.into(),
            token_sha256: token_sha256(token.as_bytes()),
            scopes: [Scope::Operator].into_iter().collect(),
            requests_per_second: None,
        });
    }
    out
}

fn client_name(name: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name != OPERATOR_TOKEN_CLIENT
        && !name.starts_with("local");
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} must be 1-64 characters of A-Z a-z 0-9 . _ - (not {OPERATOR_TOKEN_CLIENT:?}, not starting \
             with \"local\")"
        ))
    }
}

fn sha256_hex(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let digits: Option<Vec<u8>> = text.as_bytes().chunks(2).map(hex_byte).collect();
    match digits {
        Some(bytes) if text.len() == 64 => Ok(bytes.try_into().unwrap_or([0; 32])),
        _ => Err("must be the SHA-256 of the token as 64 hex digits (zenedge token new prints it)".into()),
    }
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    if text.len() == 2 { u8::from_str_radix(text, 16).ok() } else { None }
}

/// What `check-config` and the start warn about.
pub(super) fn warnings(http: &HttpConfig) -> Vec<String> {
    let mut out = Vec::new();
    if http.operator_token.is_some() {
        out.push(
            "http.operator_token: deprecated; it still works as the client \"operator-token\" with scope operator, \
             but give operators a [[http.clients]] entry (zenedge token new NAME --scopes operator)"
                .into(),
        );
    }
    if http.metrics_open && !http.listen.ip().is_loopback() {
        out.push(format!(
            "http.metrics_open: /metrics is open to anyone who reaches {} (it holds no patient data)",
            http.listen
        ));
    }
    out
}
