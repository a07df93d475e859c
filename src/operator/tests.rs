use super::*;

#[test]
fn unspecified_listen_addresses_are_reached_on_loopback() {
    assert_eq!(local_address("0.0.0.0:8080".parse().unwrap()), "127.0.0.1:8080".parse().unwrap());
    assert_eq!(local_address("[::]:8080".parse().unwrap()), "[::1]:8080".parse().unwrap());
    assert_eq!(local_address("10.0.0.5:8080".parse().unwrap()), "10.0.0.5:8080".parse().unwrap());
}
