//! The API client every test config carries: `test-client`, with every scope, whose token
//! the test HTTP client presents unless a test asks for another (or none).

/// The token of `test-client`.
pub const TOKEN: &str = "zt_test-client-token-with-every-scope";

/// The `[[http.clients]]` table of `test-client` (a whole TOML table: put it after the
/// `[http]` section or at the end).
pub fn client_toml() -> String {
    client_toml_for("test-client", TOKEN, &["read", "status", "operator", "audit", "export"])
}

/// A `[[http.clients]]` table for `name` with `token` and `scopes`.
pub fn client_toml_for(name: &str, token: &str, scopes: &[&str]) -> String {
    let hash = zenedge::ids::hex(&zenedge::config::token_sha256(token.as_bytes()));
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{s:?}")).collect();
    format!("[[http.clients]]\nname = {name:?}\ntoken_sha256 = \"{hash}\"\nscopes = [{}]\n", scopes.join(", "))
}

/// `[http]` keys every test config sets: a request rate no test reaches (the tests of the
/// limit set their own).
pub const HTTP_KEYS: &str = "requests_per_second = 1000000\n";
