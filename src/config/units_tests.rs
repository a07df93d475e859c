use super::*;

#[test]
fn durations_take_the_units_of_the_contract() {
    assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(duration("60s"), Ok(Duration::from_secs(60)));
    assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(duration("24h"), Ok(Duration::from_secs(86_400)));
    assert!(duration("5").is_err());
    assert!(positive_duration("0s").is_err());
}

#[test]
fn sizes_take_binary_units() {
    assert_eq!(size("16MiB"), Ok(16 << 20));
    assert_eq!(size("2GiB"), Ok(2 << 30));
    assert_eq!(size("2 gib"), Ok(2 << 30));
    assert_eq!(size("4096"), Ok(4096));
    assert_eq!(size("100B"), Ok(100));
    assert!(size("lots").is_err());
}

#[test]
fn decimal_sizes_are_refused_with_the_binary_spelling_to_use() {
    let e = size("16MB").unwrap_err();
    assert!(e.contains("decimal") && e.contains("\"16MiB\""), "{e}");
    let e = size("2 g").unwrap_err();
    assert!(e.contains("\"2GiB\""), "{e}");
    assert!(size("1.5kb").unwrap_err().contains("\"1.5KiB\""));
}

#[test]
fn disk_reserve_is_bytes_or_percent() {
    assert_eq!(disk_reserve("2GiB"), Ok(DiskReserve::Bytes(2 << 30)));
    assert_eq!(disk_reserve("5%"), Ok(DiskReserve::Percent(5.0)));
    assert_eq!(DiskReserve::Percent(10.0).bytes_for(1000), 100);
    assert!(disk_reserve("101%").is_err());
    assert!(disk_reserve("x%").is_err());
}
