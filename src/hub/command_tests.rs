use super::*;
use clap::Parser;

fn hub_args(args: &[&str]) -> HubArgs {
    let cli = crate::cli::Cli::try_parse_from(["zenedge", "hub"].iter().chain(args)).unwrap();
    let crate::cli::Command::Hub(args) = cli.command else { panic!("not the hub command") };
    *args
}

#[test]
fn zero_limits_are_refused() {
    let args = hub_args(&["--listen", "127.0.0.1:0", "--state-dir", "x", "--max-event-bytes", "0"]);
    assert!(options(&args).unwrap_err().contains("--max-event-bytes"));
}

#[test]
fn exactly_one_store_is_named() {
    let none = hub_args(&["--listen", "127.0.0.1:0"]);
    assert!(store_choice(&none.store).unwrap_err().contains("--state-dir"));
    let both = hub_args(&["--listen", "127.0.0.1:0", "--state-dir", "x", "--postgres", "postgres://h/db"]);
    assert!(store_choice(&both.store).unwrap_err().contains("exclude"));
    let pg = hub_args(&["--listen", "127.0.0.1:0", "--postgres", "postgres://h/db", "--postgres-pool", "4"]);
    let Ok(StoreChoice::Postgres(settings)) = store_choice(&pg.store) else { panic!("postgres") };
    assert_eq!(settings.pool_size, 4);
    let migrate = hub_args(&["migrate", "--postgres", "postgres://h/db"]);
    assert!(matches!(migrate.action, Some(HubAction::Migrate(_))));
}

#[test]
fn the_example_hub_configuration_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hub.example.toml");
    let settings = HubFile::load(&path).unwrap();
    assert!(settings.url.contains("sslmode=verify-full"));
    assert_eq!(settings.pool_size, 16);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("hub.toml");
    std::fs::write(&bad, "[hub.postgres]\nurl = \"postgres://h/db\"\npool = 3\n").unwrap();
    assert!(HubFile::load(&bad).unwrap_err().contains("pool"));
}
