//! Polling with a deadline instead of sleeping and hoping: the one way the integration tests
//! wait for something to happen.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one poll found: not yet (with what it saw, for the failure message), or done.
pub trait Poll {
    /// What [`eventually`] returns once done.
    type Value;
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

/// `true`: done.
impl Poll for bool {
    type Value = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// `Some(value)`: done, with the value.
impl<T> Poll for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)`: done; `Err(seen)`: not yet, and the last `seen` is shown if time runs out.
impl<T> Poll for Result<T, String> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `check` every 20 ms until it is done and returns what it found; fails the test
/// naming `what` (and the last thing seen, if the check says) after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> <Fut::Output as Poll>::Value
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Poll,
{
    let deadline = Instant::now() + limit;
    loop {
        let seen = match check().await.ready() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            match seen {
                Some(seen) => panic!("timed out waiting for: {what} (last seen: {seen})"),
                None => panic!("timed out waiting for: {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
