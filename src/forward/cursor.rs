//! Each destination's cursor: a row of the log's `meta` table, `forward_cursor.<name>`
//! (decimal): every `InstanceStored` up to and including it has had the destination's answer
//! recorded (an `InstanceForwarded`, stored or refused). Absent means 0.
//!
//! The answers of a round and the cursor's move are one writer request, one transaction: a
//! crash leaves both or neither, so a round is at worst sent again (the archive keeps one copy
//! of a SOP instance sent twice) and never skipped. The same transaction parks refused instances
//! as dead letters and delivers letters a later send stored ([`super::dead_letters`]). Not a projection: `zenedge rebuild` and
//! `verify` leave it alone.

use crate::events::{Event, InstanceForwarded, NewEvent};
use crate::log::{Aggregate, AppendError, LogHandle, LogReader, ReadError, Txn, positions};
use crate::projections::Projections;

fn key(destination: &str) -> String {
    format!("forward_cursor.{destination}")
}

/// The cursor of `destination` (0: nothing forwarded yet).
pub fn cursor(reader: &LogReader, destination: &str) -> Result<u64, ReadError> {
    positions::read(reader, &key(destination))
}

/// Appends the round's answers, each with how often the instance was sent (parking refused instances as dead letters) and moves
/// `destination`'s cursor to `through` (a resend of dead letters passes the cursor as it
/// stands), in one transaction; returns once durable.
pub async fn record_round(
    log: &LogHandle<Projections>,
    destination: String,
    answers: Vec<(InstanceForwarded, u32)>,
    through: u64,
) -> Result<(), AppendError> {
    log.request((destination, answers, through), apply_round).await
}

type Applied = Result<Result<(), AppendError>, redb::Error>;

fn apply_round(
    t: &mut Txn<'_, '_, Projections>,
    (destination, answers, through): (String, Vec<(InstanceForwarded, u32)>, u64),
) -> Applied {
    for (answer, sends) in answers {
        super::dead_letters::record_answer(t, &answer, sends)?;
        let aggregate = Aggregate { kind: "instance".into(), id: answer.sop_instance_uid.clone() };
        if let Err(e) = t.append(&NewEvent::now(aggregate, Event::InstanceForwarded(Box::new(answer))))? {
            return Ok(Err(e));
        }
    }
    positions::write(t, &key(&destination), through)?;
    Ok(Ok(()))
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
