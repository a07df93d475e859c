use super::*;

#[test]
fn backoff_is_full_jitter_under_a_doubling_capped_ceiling() {
    let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
    assert_eq!(ceiling(base, cap, 1), base);
    assert_eq!(ceiling(base, cap, 2), base * 2);
    assert_eq!(ceiling(base, cap, 4), base * 8);
    assert_eq!(ceiling(base, cap, 5), base * 16);
    assert_eq!(ceiling(base, cap, 6), cap);
    assert_eq!(ceiling(base, cap, 1000), cap, "no overflow after many failures");
    let mut rng = fastrand::Rng::with_seed(7);
    for n in 1..12 {
        let mut low = Duration::MAX;
        let mut high = Duration::ZERO;
        for _ in 0..2000 {
            let d = backoff(&mut rng, base, cap, n);
            assert!(d <= ceiling(base, cap, n), "{d:?} after {n} failures");
            low = low.min(d);
            high = high.max(d);
        }
        // Full jitter: the whole range is used, from near zero to near the ceiling.
        assert!(low < ceiling(base, cap, n) / 10, "{low:?}");
        assert!(high > ceiling(base, cap, n) * 9 / 10, "{high:?}");
    }
}

#[test]
fn breaker_opens_after_the_threshold_then_a_probe_decides() {
    let t0 = Instant::now();
    let mut b = Breaker::new(3, Duration::from_secs(30));
    assert!(!b.on_failure(t0));
    assert!(!b.on_failure(t0));
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.on_failure(t0), "the third failure in a row opens it");
    assert_eq!((b.state(), b.open_until()), (BreakerState::Open, Some(t0 + Duration::from_secs(30))));
    assert!(b.half_open());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.on_failure(t0 + Duration::from_secs(31)), "a failed probe opens it again");
    assert_eq!(b.open_until(), Some(t0 + Duration::from_secs(61)));
    assert!(b.half_open());
    assert_eq!(b.on_success(), Some(BreakerState::HalfOpen), "a good probe closes it");
    assert_eq!((b.state(), b.failures()), (BreakerState::Closed, 0));
    assert_eq!(b.on_success(), None);
    assert!(!b.on_failure(t0), "the count starts again after a success");
}
