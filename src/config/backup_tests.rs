//! `[backup]`: off by default, the two schedule forms, and each bad value named with its key.

use std::time::Duration;

use super::*;

const MINIMAL: &str =
    "[site]\ntenant_id = \"t\"\nhospital_id = \"h\"\nedge_id = \"e\"\n[store]\nstate_dir = \"/srv/zenedge\"\n";

fn backup(section: &str) -> Result<BackupConfig, Vec<Problem>> {
    match Config::from_toml(&format!("{MINIMAL}[backup]\n{section}")) {
        Ok(config) => Ok(config.backup),
        Err(ConfigError::Invalid(problems)) => Err(problems),
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn backups_are_off_by_default_daily_at_two_kept_thirty_days() {
    let config = Config::from_toml(MINIMAL).unwrap().backup;
    assert_eq!(config.dir, None);
    assert_eq!(config.schedule, Schedule::Daily { hour: 2, minute: 0 });
    assert_eq!(config.keep, Duration::from_secs(30 * 86400));
}

#[test]
fn a_schedule_is_daily_at_a_local_time_or_every_duration() {
    let daily = backup("dir = \"/backup\"\nschedule = \"daily 23:05\"\nkeep = \"7d\"\n").unwrap();
    assert_eq!(daily.dir.as_deref(), Some(std::path::Path::new("/backup")));
    assert_eq!(daily.schedule, Schedule::Daily { hour: 23, minute: 5 });
    assert_eq!(daily.schedule.to_string(), "daily 23:05");
    assert_eq!(daily.keep, Duration::from_secs(7 * 86400));
    assert_eq!(backup("schedule = \"02:30\"\n").unwrap().schedule, Schedule::Daily { hour: 2, minute: 30 });
    let every = backup("schedule = \"every 6h\"\n").unwrap().schedule;
    assert_eq!(every, Schedule::Every(Duration::from_secs(6 * 3600)));
    assert_eq!(every.period(), Duration::from_secs(6 * 3600));
    assert_eq!(every.to_string(), "every 6h");
}

#[test]
fn a_bad_schedule_or_keep_is_a_problem_of_its_key_saying_how_to_write_one() {
    for bad in ["24:00", "daily 2:00", "7:60", "weekly 02:00", "every", "every 0s", "every soon", ""] {
        let problems = backup(&format!("schedule = {bad:?}\n")).unwrap_err();
        assert_eq!(problems.len(), 1, "{bad:?}: {problems:?}");
        assert_eq!(problems[0].key, "backup.schedule");
        assert!(problems[0].reason.contains("\"daily 02:00\" (local time) or \"every 6h\""), "{:?}", problems[0]);
    }
    let problems = backup("keep = \"forever\"\n").unwrap_err();
    assert_eq!(problems[0].key, "backup.keep");
}

#[test]
fn a_backup_directory_inside_the_state_directory_is_refused() {
    for inside in ["/srv/zenedge", "/srv/zenedge/backups", "/srv/other/../zenedge/./b"] {
        let problems = backup(&format!("dir = {inside:?}\n")).unwrap_err();
        assert_eq!(problems[0].key, "backup.dir", "{inside}");
        assert!(problems[0].reason.contains("inside the state directory"), "{problems:?}");
    }
    assert!(backup("dir = \"/srv/zenedge-backups\"\n").is_ok());
}

#[test]
fn a_schedule_more_often_than_hourly_is_warned_about() {
    let text = format!("{MINIMAL}[backup]\ndir = \"/backup\"\nschedule = \"every 10m\"\n");
    let warnings = Config::from_toml(&text).unwrap().warnings();
    assert!(warnings.iter().any(|w| w.starts_with("backup.schedule: every 10m")), "{warnings:?}");
    let daily = Config::from_toml(&format!("{MINIMAL}[backup]\ndir = \"/backup\"\n")).unwrap();
    assert!(!daily.warnings().iter().any(|w| w.starts_with("backup.")));
}
