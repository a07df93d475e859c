use std::time::Duration;

use jiff::Timestamp;

use super::*;

const DAY: Duration = Duration::from_secs(86400);

fn found(at: &str) -> Found {
    let at: Timestamp = at.parse().unwrap();
    Found { name: name_for(at), at }
}

#[test]
fn names_carry_the_start_time_in_utc_and_read_back() {
    let at: Timestamp = "2026-12-07T02:00:05Z".parse().unwrap();
    assert_eq!(name_for(at), "zenedge-20261207T020005Z");
    assert_eq!(parse_name("zenedge-20261207T020005Z"), Some(at));
    assert_eq!(part_name("zenedge-20261207T020005Z"), ".zenedge-20261207T020005Z.part");
    for other in ["zenedge-latest", "backup-20261207T020005Z", "zenedge-20261307T020005Z", ""] {
        assert_eq!(parse_name(other), None, "{other}");
    }
}

#[test]
fn backups_older_than_keep_go_but_never_the_newest() {
    let backups = [found("2026-11-01T02:00:00Z"), found("2026-11-20T02:00:00Z"), found("2026-12-07T02:00:00Z")];
    let now: Timestamp = "2026-12-07T03:00:00Z".parse().unwrap();
    assert_eq!(expired(&backups, 30 * DAY, now), &backups[..1]);
    assert_eq!(expired(&backups, 10 * DAY, now), &backups[..2]);
    // Everything older than keep (backups failed for weeks): the newest stays.
    let later: Timestamp = "2027-06-01T00:00:00Z".parse().unwrap();
    assert_eq!(expired(&backups, DAY, later), &backups[..2]);
    assert_eq!(expired(&backups[2..], DAY, later), &[] as &[Found]);
    assert_eq!(expired(&[], DAY, later), &[] as &[Found]);
}

#[test]
fn only_complete_backups_are_listed_and_pruned_and_partial_ones_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let complete = |name: &str| {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join(DATABASE), b"db").unwrap();
    };
    complete("zenedge-20200101T000000Z");
    complete("zenedge-20200102T000000Z");
    complete("zenedge-20261207T020000Z");
    std::fs::create_dir_all(dir.path().join("zenedge-20200103T000000Z")).unwrap(); // no database: not complete
    std::fs::create_dir_all(dir.path().join(".zenedge-20261207T030000Z.part/instances")).unwrap();
    std::fs::create_dir_all(dir.path().join("unrelated")).unwrap();
    let names: Vec<_> = list(dir.path()).unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names, ["zenedge-20200101T000000Z", "zenedge-20200102T000000Z", "zenedge-20261207T020000Z"]);

    let now: Timestamp = "2026-12-07T03:00:00Z".parse().unwrap();
    let removed = prune(dir.path(), 30 * DAY, now).unwrap();
    assert_eq!(removed, ["zenedge-20200101T000000Z", "zenedge-20200102T000000Z"]);
    assert_eq!(sweep_partial(dir.path()).unwrap(), 1);
    let mut left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["unrelated", "zenedge-20200103T000000Z", "zenedge-20261207T020000Z"]);
    assert!(list(&dir.path().join("missing")).unwrap().is_empty());
}
