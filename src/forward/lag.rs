//! How far a destination is behind: the instances stored after its cursor, their bytes, and
//! the age of the oldest event after it (as the sync's lag in seconds).
//!
//! Counted incrementally, so that a long backlog is read once, not once per round: two
//! tallies over the `InstanceStored` events after the cursor the worker started at, one
//! brought up to the log's head and one up to the cursor; the lag is their difference. Each
//! only moves forward, so every event is read at most twice in the worker's life.

use jiff::Timestamp;

use crate::events::{self, Event};
use crate::log::{LogReader, ReadError};

/// Events read per page.
const PAGE: usize = 1024;

/// What the destination has still to be sent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Behind {
    pub instances: u64,
    /// The sizes of those instances' files, as their `InstanceStored` recorded.
    pub bytes: u64,
    /// The age of the oldest event after the cursor (0 when there is none).
    pub seconds: f64,
}

/// Instances and bytes of the `InstanceStored` events from the start up to `through`.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    through: u64,
    instances: u64,
    bytes: u64,
}

impl Tally {
    /// Reads the events after `self.through` up to `to`.
    fn advance(&mut self, reader: &LogReader, to: u64) -> Result<(), ReadError> {
        while self.through < to {
            let page = events::after(reader, self.through, PAGE)?;
            if page.items.is_empty() {
                return Ok(());
            }
            for envelope in page.items {
                if envelope.seq > to {
                    return Ok(());
                }
                if let Event::InstanceStored(i) = envelope.event {
                    self.instances += 1;
                    self.bytes += i.size;
                }
                self.through = envelope.seq;
            }
            if page.next.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The two tallies of one destination.
#[derive(Debug, Clone, Default)]
pub struct Lag {
    head: Tally,
    cursor: Tally,
}

impl Lag {
    /// Counting starts after `cursor` (what lies before it is sent).
    pub fn new(cursor: u64) -> Lag {
        let start = Tally { through: cursor, ..Tally::default() };
        Lag { head: start, cursor: start }
    }

    /// How far the destination at `cursor` is behind the log at `head`, at `now`.
    pub fn behind(&mut self, reader: &LogReader, cursor: u64, head: u64, now: Timestamp) -> Result<Behind, ReadError> {
        self.head.advance(reader, head)?;
        self.cursor.advance(reader, cursor.min(self.head.through))?;
        let seconds = match events::get(reader, cursor + 1)? {
            Some(oldest) if cursor < head => now.duration_since(oldest.recorded_at).as_secs_f64().max(0.0),
            _ => 0.0,
        };
        Ok(Behind {
            instances: self.head.instances.saturating_sub(self.cursor.instances),
            bytes: self.head.bytes.saturating_sub(self.cursor.bytes),
            seconds,
        })
    }
}

#[cfg(test)]
#[path = "lag_tests.rs"]
mod tests;
