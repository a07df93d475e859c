use super::*;

#[test]
fn the_sweep_counts_partly_received_instances_not_the_prepared_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = Layout::new(dir.path().to_owned());
    assert_eq!(first.prepare().unwrap(), 0);
    let (_file, prepared) = first.take_temp().unwrap();
    std::fs::write(first.spool().join("cut.part"), b"half an instance").unwrap();
    let second = Layout::new(dir.path().to_owned());
    assert_eq!(second.prepare().unwrap(), 1, "only the file with data is a partly received instance");
    assert!(!prepared.exists(), "the empty prepared files are removed too");
}
