//! How far this node's clock is from the database's. Times that another node compares (run
//! leases, lane slots and gaps, the pacer slot, cap days, delivery claims) must come from one
//! clock, and on `PostgreSQL` that is the server's: two nodes a few seconds apart would
//! otherwise take each other's live leases or send inside each other's gaps.
//!
//! Asking the server for every such time would add a round trip to each; instead every
//! answer that carries `clock_timestamp()` (a connect, and the fence check that opens each
//! of the leader's transactions) updates the offset, taken against the midpoint of the round
//! trip, so it is never older than the last write and off by at most half a round trip.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use tracing::warn;

/// The server's clock as seconds since the epoch, as an expression to select.
pub const NOW: &str = "extract(epoch FROM clock_timestamp())::float8";

/// Past this, a node's clock is far enough off the database's to say so in the log.
const FAR: Duration = Duration::seconds(1);

/// The database's clock minus this node's, in microseconds.
#[derive(Debug, Default)]
pub struct Offset {
    micros: AtomicI64,
    /// Whether the log has said the clocks are far apart (said again once they agree).
    warned: AtomicBool,
}

impl Offset {
    /// The server said `db` (seconds since the epoch, as [`NOW`] gives it) between `sent`
    /// and `received` on this node's clock.
    pub fn record(&self, db: f64, sent: DateTime<Utc>, received: DateTime<Utc>) {
        let Some(offset) = between(db, sent, received) else {
            return;
        };
        self.micros
            .store(offset.num_microseconds().unwrap_or(0), Ordering::Relaxed);
        let far = offset.abs() > FAR;
        if far != self.warned.swap(far, Ordering::Relaxed) {
            if far {
                warn!(
                    offset_ms = offset.num_milliseconds(),
                    "this node's clock is off the database's; times shared with other nodes follow the database's"
                );
            } else {
                tracing::info!(
                    offset_ms = offset.num_milliseconds(),
                    "this node's clock agrees with the database's again"
                );
            }
        }
    }

    /// `node` (a time on this node's clock) on the database's clock.
    pub fn apply(&self, node: DateTime<Utc>) -> DateTime<Utc> {
        node + Duration::microseconds(self.micros.load(Ordering::Relaxed))
    }
}

/// The database's clock minus this node's, from one answer: `db` against the midpoint of the
/// round trip. `None` for an answer that is not a time.
fn between(db: f64, sent: DateTime<Utc>, received: DateTime<Utc>) -> Option<Duration> {
    if !db.is_finite() {
        return None;
    }
    let db = DateTime::from_timestamp_micros((db * 1e6).round() as i64)?;
    let midpoint = sent + (received - sent) / 2;
    Some(db - midpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_offset_is_taken_against_the_middle_of_the_round_trip() {
        let (sent, received) = (at("2026-12-04T10:00:00Z"), at("2026-12-04T10:00:00.010Z"));
        let db = at("2026-12-04T10:00:03.005Z").timestamp_micros() as f64 / 1e6;
        assert_eq!(between(db, sent, received), Some(Duration::seconds(3)));
        let o = Offset::default();
        assert_eq!(o.apply(sent), sent, "no answer yet: the node's own clock");
        o.record(db, sent, received);
        assert_eq!(
            o.apply(at("2026-12-04T11:00:00Z")),
            at("2026-12-04T11:00:03Z")
        );
        // A server behind this node.
        let behind = at("2026-12-04T09:59:58Z").timestamp_micros() as f64 / 1e6;
        o.record(behind, sent, sent);
        assert_eq!(o.apply(sent), at("2026-12-04T09:59:58Z"));
    }

    #[test]
    fn an_answer_that_is_not_a_time_changes_nothing() {
        let o = Offset::default();
        let t = at("2026-12-04T10:00:00Z");
        o.record(1.0e6, t, t);
        o.record(f64::NAN, t, t);
        assert_eq!(
            o.apply(t),
            at("1970-01-12T13:46:40Z") + (t - t),
            "the last time kept"
        );
        o.record(f64::INFINITY, t, t);
        assert_eq!(o.apply(t), at("1970-01-12T13:46:40Z"));
    }
}
