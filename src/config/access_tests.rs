//! `[http]` access: clients, scopes, the old operator token, and the limits' ranges.

use super::*;

const MINIMAL: &str = "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n";
const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn problem_keys(text: &str) -> Vec<String> {
    match Config::from_toml(text) {
        Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn clients_are_read_with_their_scopes_and_the_hash_of_their_token() {
    let text = format!(
        "{MINIMAL}[[http.clients]]\nname = \"ris-viewer\"\ntoken_sha256 = \"{HASH}\"\nscopes = [\"read\", \"audit\"]\n"
    );
    let config = Config::from_toml(&text).unwrap();
    let [client] = config.http.clients.as_slice() else { panic!("one client: {:?}", config.http.clients) };
    assert_eq!(client.name, "ris-viewer");
    assert_eq!(client.token_sha256, access::token_sha256(b"test"));
    assert_eq!(client.scopes.names(), ["read", "audit"]);
    assert!(!client.scopes.contains(Scope::Operator));
    assert_eq!(config.http.requests_per_second, 100, "the required default");
    assert_eq!(config.http.auth_failures_per_minute, 10);
    assert!(!config.http.metrics_open);
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
}

#[test]
fn bad_clients_are_problems_of_their_keys() {
    let text = format!(
        "{MINIMAL}[[http.clients]]\nname = \"a b\"\ntoken_sha256 = \"{HASH}\"\nscopes = [\"read\"]\n\
         [[http.clients]]\nname = \"b\"\ntoken_sha256 = \"abc\"\nscopes = [\"write\"]\n\
         [[http.clients]]\nname = \"c\"\ntoken_sha256 = \"{HASH}\"\nscopes = []\n\
         [[http.clients]]\nname = \"d\"\ntoken_sha256 = \"{HASH}\"\nscopes = [\"status\"]\n"
    );
    let keys = problem_keys(&text);
    assert_eq!(
        keys,
        [
            "http.clients[0].name",
            "http.clients[1].token_sha256",
            "http.clients[1].scopes[0]",
            "http.clients[2].scopes",
            "http.clients[3].token_sha256",
        ],
        "the last reuses the third's hash"
    );
}

#[test]
fn the_old_operator_token_is_a_client_with_scope_operator_and_a_deprecation_warning() {
    let config = Config::from_toml(&format!("{MINIMAL}[http]\noperator_token = \"0123456789abcdef\"\n")).unwrap();
    let [client] = config.http.clients.as_slice() else { panic!("one client") };
    assert_eq!(client.name, "operator-token");
    assert_eq!(client.scopes.names(), ["operator"]);
    assert_eq!(client.token_sha256, access::token_sha256(b"0123456789abcdef"));
    let warnings = config.warnings();
    assert!(warnings.iter().any(|w| w.starts_with("http.operator_token: deprecated")), "{warnings:?}");
}

#[test]
fn limits_are_checked_against_their_ranges() {
    let text = format!(
        "{MINIMAL}[http]\nrequests_per_second = 0\nauth_failures_per_minute = 0\nmax_header_bytes = \"1KiB\"\n"
    );
    assert_eq!(
        problem_keys(&text),
        ["http.max_header_bytes", "http.requests_per_second", "http.auth_failures_per_minute"]
    );
}
