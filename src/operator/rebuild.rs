//! `zenedge rebuild` and `zenedge verify`, on the database of a stopped daemon (redb refuses a
//! second process, and the message says to stop the daemon): rebuild drops every projection and
//! replays the log with a progress bar, printing a digest of the projections before and after;
//! verify replays the log in memory and lists the tables that differ from the projections on
//! disk (exit 1), changing nothing. The replay itself is [`crate::projections::rebuild`].

use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;

/// `zenedge rebuild`: exit 0 once the projections are rebuilt, 1 on failure, 78 for a bad
/// config.
pub fn run_rebuild(config: &Path) -> ExitCode {
    with_database(config, rebuild)
}

/// `zenedge verify`: exit 0 when the projections match the log, 1 when they differ or the
/// check fails, 78 for a bad config.
pub fn run_verify(config: &Path) -> ExitCode {
    with_database(config, verify)
}

/// Loads the config and opens the database of a stopped daemon for `run`.
pub(crate) fn with_database(path: &Path, run: fn(&redb::Database, &Config) -> ExitCode) -> ExitCode {
    let config = match crate::cli::load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match crate::projections::rebuild::open_keyed(&crate::log::LogOptions::from_config(&config)) {
        Ok(db) => run(&db, &config),
        Err(e) => {
            eprintln!("zenedge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rebuild(db: &redb::Database, config: &Config) -> ExitCode {
    use crate::projections::rebuild;
    let before = match rebuild::digest(db) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("zenedge: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("projections before: {}", rebuild::overall(&before));
    let bar = super::progress::bar();
    let started = std::time::Instant::now();
    let mut events = 0;
    let result = rebuild::rebuild(db, &config.site, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        events = done;
    });
    let seconds = started.elapsed().as_secs_f64();
    super::progress::finish(&bar);
    match result.and_then(|()| rebuild::digest(db)) {
        Ok(after) => {
            println!("replayed {events} events in {seconds:.2} s ({:.0} events/s)", events as f64 / seconds.max(1e-9));
            println!("projections after:  {}", rebuild::overall(&after));
            for d in &after {
                println!("  {:<22} {:>10} rows  {}", d.table, d.rows, &d.sha256[..16]);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zenedge: rebuild failed: {e}; run it again");
            ExitCode::FAILURE
        }
    }
}

fn verify(db: &redb::Database, config: &Config) -> ExitCode {
    let bar = super::progress::bar();
    let result = crate::projections::rebuild::verify(db, &config.site, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    super::progress::finish(&bar);
    match result {
        Ok(differences) if differences.is_empty() => {
            println!("projections match the log");
            ExitCode::SUCCESS
        }
        Ok(differences) => {
            for (actual, expected) in differences {
                println!(
                    "{}: {} rows (digest {}) on disk, {} rows (digest {}) from the log",
                    actual.table,
                    actual.rows,
                    &actual.sha256[..16],
                    expected.rows,
                    &expected.sha256[..16]
                );
            }
            println!("projections differ from the log: run `zenedge rebuild`");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("zenedge: verify failed: {e}");
            ExitCode::FAILURE
        }
    }
}
