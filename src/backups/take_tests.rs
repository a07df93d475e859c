use super::*;

#[test]
fn a_copy_on_the_state_directorys_file_system_must_leave_the_disk_reserve_free() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("elsewhere");
    std::fs::create_dir(&dir).unwrap();
    let room = |reserve| Room { state_dir: state.path().to_owned(), reserve };
    check_room(&dir, &room(0), 1).expect("one byte fits");
    let err = check_room(&dir, &room(u64::MAX / 2), 1).unwrap_err();
    assert!(err.contains("keep the state directory's disk reserve"), "{err}");
    let err = check_room(&dir, &room(0), u64::MAX / 2).unwrap_err();
    assert!(err.contains("not enough for"), "{err}");
}
