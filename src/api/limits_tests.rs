use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_bucket_gives_its_burst_then_refuses_with_the_wait_until_the_next_token() {
    let table = RateTable::new(10.0 / 60.0, 10.0);
    let now = Instant::now();
    for _ in 0..10 {
        assert!(table.take_at(ip("10.0.0.1"), now, 1.0).is_ok());
    }
    let wait = table.take_at(ip("10.0.0.1"), now, 1.0).unwrap_err();
    assert_eq!(wait.as_secs(), 6, "one token every 6 s: {wait:?}");
    assert!(table.take_at(ip("10.0.0.2"), now, 1.0).is_ok(), "another address has its own bucket");
    assert!(table.take_at(ip("10.0.0.1"), now + Duration::from_secs(6), 1.0).is_ok(), "refilled");
}

#[test]
fn checking_takes_nothing() {
    let table = RateTable::new(1.0, 1.0);
    let now = Instant::now();
    for _ in 0..5 {
        assert!(table.take_at(ip("10.0.0.1"), now, 0.0).is_ok());
    }
    assert!(table.take_at(ip("10.0.0.1"), now, 1.0).is_ok());
    assert!(table.take_at(ip("10.0.0.1"), now, 0.0).is_err());
}

#[test]
fn ipv6_addresses_of_one_slash_64_share_a_bucket() {
    let table = RateTable::new(1.0, 1.0);
    let now = Instant::now();
    assert!(table.take_at(ip("2001:db8::1"), now, 1.0).is_ok());
    assert!(table.take_at(ip("2001:db8::ffff:2"), now, 1.0).is_err());
    assert!(table.take_at(ip("2001:db8:0:1::1"), now, 1.0).is_ok());
}

#[test]
fn the_table_stays_bounded_under_a_flood_of_addresses() {
    let table = RateTable::with_capacity(1.0, 1.0, 100);
    let now = Instant::now();
    for i in 0..10_000u32 {
        let _ = table.take_at(IpAddr::from(i.to_be_bytes()), now, 1.0);
        assert!(table.len() <= 100);
    }
    // Refilled buckets are dropped first: the busy address keeps its (empty) bucket.
    let table = RateTable::with_capacity(1.0, 1.0, 2);
    assert!(table.take_at(ip("10.0.0.1"), now, 1.0).is_ok());
    assert!(table.take_at(ip("10.0.0.2"), now, 0.0).is_ok());
    assert!(table.take_at(ip("10.0.0.3"), now, 1.0).is_ok());
    assert!(table.take_at(ip("10.0.0.1"), now, 1.0).is_err(), "10.0.0.1's history is kept");
}
