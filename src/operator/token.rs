//! `zenedge token new NAME --scopes read,audit`: a fresh random token for a new API client,
//! printed once, with the `[[http.clients]]` lines to paste. Only the token's SHA-256 goes
//! into the config, so the token exists nowhere but in this output and with the client.

use std::process::ExitCode;

use crate::config::{Config, ConfigError, token_sha256};
use crate::ids::hex;

/// Exit code of a bad name or scope (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// The client's lines for the config, after checking them as the config would.
pub fn client_lines(name: &str, scopes: &[String], token: &str) -> Result<String, Vec<String>> {
    let scopes: Vec<String> = scopes.iter().map(|s| format!("{:?}", s.trim())).collect();
    let lines = format!(
        "[[http.clients]]\nname = {name:?}\ntoken_sha256 = \"{}\"\nscopes = [{}]\n",
        hex(&token_sha256(token.as_bytes())),
        scopes.join(", ")
    );
    let probe = format!("[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n{lines}");
    match Config::from_toml(&probe) {
        Ok(_) => Ok(lines),
        Err(ConfigError::Invalid(problems)) => {
            Err(problems.iter().map(|p| format!("{}: {}", p.key, p.reason)).collect())
        }
        Err(e) => Err(vec![e.to_string()]),
    }
}

/// `zenedge token new`: exit 0 with the token and the lines; 64 for a bad name or scope.
pub fn run_new(name: &str, scopes: &[String]) -> ExitCode {
    let token = match super::local_token::new_token() {
        Ok(token) => token,
        Err(e) => {
            eprintln!("zenedge token new: {e}");
            return ExitCode::FAILURE;
        }
    };
    match client_lines(name, scopes, &token) {
        Ok(lines) => {
            println!("# The token of client {name:?}, shown only this once (the config keeps its SHA-256):");
            println!("{token}");
            println!("# The client sends it as `Authorization: Bearer <token>`.");
            println!("# Add these lines to the config, then restart zenedge:");
            print!("{lines}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("zenedge token new: {}", problem.replace("http.clients[0].", ""));
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}
