//! The config parser (`zenedge::config::Config::from_toml`): TOML text in, a validated
//! config or a list of problems out, never a panic.
//!
//! Input: the file's bytes (invalid UTF-8 is what `Config::load` refuses before parsing, so
//! only text is parsed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zenedge::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::from_toml(text) {
        Ok(config) => {
            // Validated values keep the ranges the daemon relies on.
            assert!(config.mllp.max_message_bytes >= 1024);
            assert!(config.store.queue_depth >= 1 && config.store.max_batch >= 1);
            assert!(!config.mllp.idle_timeout.is_zero());
            assert!(!config.mllp.accession_from.is_empty());
        }
        Err(ConfigError::Invalid(problems)) => assert!(!problems.is_empty(), "Invalid with no problem listed"),
        Err(_) => {}
    }
});
