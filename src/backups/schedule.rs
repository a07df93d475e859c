//! When the next backup is due: a pure function of the schedule, the last success, the last
//! attempt of this run, the time now and the box's time zone (so it is tested without
//! waiting for a clock).

use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::config::Schedule;

/// The time of the next backup.
///
/// At start-up (`last_attempt` is `None`) a backup is due at once when the newest success is
/// older than the schedule's period (a day for `daily`), or there is none: what was missed
/// while the daemon was down is caught up. Otherwise the next one is the next `HH:MM` of the
/// local day after the last attempt (or after now at start-up), or `every` after the last
/// attempt (or after the last success at start-up). A failed attempt waits for the next
/// scheduled time like a successful one.
pub fn next_run(
    schedule: Schedule,
    last_success: Option<Timestamp>,
    last_attempt: Option<Timestamp>,
    now: Timestamp,
    tz: &TimeZone,
) -> Timestamp {
    let period = SignedDuration::try_from(schedule.period()).unwrap_or(SignedDuration::MAX);
    let base = match last_attempt {
        Some(attempt) => attempt,
        None => match last_success {
            Some(success) if now.duration_since(success) < period => match schedule {
                Schedule::Daily { .. } => now,
                Schedule::Every(_) => success,
            },
            _ => return now,
        },
    };
    match schedule {
        Schedule::Daily { hour, minute } => next_daily(base, hour, minute, tz),
        Schedule::Every(every) => base.checked_add(signed(every)).unwrap_or(Timestamp::MAX),
    }
}

/// The first `hour:minute` of the local day strictly after `after`. A time the clocks skip
/// (a DST gap) is taken as the instant after the gap; a time they pass twice, the first.
fn next_daily(after: Timestamp, hour: i8, minute: i8, tz: &TimeZone) -> Timestamp {
    let at = Time::new(hour, minute, 0, 0).unwrap_or(Time::midnight());
    let local = after.to_zoned(tz.clone());
    let mut day = local.date();
    for _ in 0..3 {
        if let Ok(candidate) = day.to_datetime(at).to_zoned(tz.clone())
            && candidate.timestamp() > after
        {
            return candidate.timestamp();
        }
        day = day.checked_add(1.day()).unwrap_or(day);
    }
    after.checked_add(SignedDuration::from_hours(24)).unwrap_or(Timestamp::MAX)
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
