use super::*;

#[test]
fn kernel_versions_are_read_from_the_release_string() {
    assert_eq!(kernel_version("6.1.0-18-amd64\n"), Some((6, 1)));
    assert_eq!(kernel_version("5.8.0"), Some((5, 8)));
    assert_eq!(kernel_version("5.4.0-150-generic"), Some((5, 4)));
    assert_eq!(kernel_version("6.18.44-fc-v1300"), Some((6, 18)));
    assert_eq!(kernel_version(""), None);
    assert_eq!(kernel_version("linux"), None);
}

#[test]
fn syncfs_is_trusted_from_linux_5_8() {
    assert!(kernel_version("5.8.0").unwrap() >= SYNCFS_REPORTS_ERRORS);
    assert!(kernel_version("5.7.19").unwrap() < SYNCFS_REPORTS_ERRORS);
    assert!(kernel_version("4.19.0").unwrap() < SYNCFS_REPORTS_ERRORS);
    assert!(kernel_version("10.0.1").unwrap() >= SYNCFS_REPORTS_ERRORS);
}
