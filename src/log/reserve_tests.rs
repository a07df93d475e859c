use super::*;

#[test]
fn a_full_percentage_reserve_is_always_breached() {
    let dir = tempfile::tempdir().unwrap();
    let space = DiskGuard::new(dir.path().into(), DiskReserve::Percent(100.0)).space().unwrap();
    assert!(space.below_reserve(), "{space:?}");
}

#[test]
fn a_writable_directory_is_writable_and_a_missing_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    DiskGuard::new(dir.path().into(), DiskReserve::Bytes(0)).writable().unwrap();
    let gone = DiskGuard::new(dir.path().join("missing"), DiskReserve::Bytes(0));
    assert!(gone.writable().is_err());
}

#[test]
fn a_zero_reserve_is_never_breached() {
    let dir = tempfile::tempdir().unwrap();
    let space = DiskGuard::new(dir.path().into(), DiskReserve::Bytes(0)).space().unwrap();
    assert!(!space.below_reserve(), "{space:?}");
}
