//! Identity lanes as the database keeps them, so that every process on the machine (the daemon,
//! `trigger`, `runs resume`) shares them: requests in flight per lane (leased slots), when a
//! lane may send next, pauses, and each lane's requests per local day. And the plan-rate slot
//! that all processes take turns on.

use super::db::{Db, Optional};
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Result, parse_ts, ts, write_tx};
use crate::catalog::Count;

/// What a request asks of its lanes.
#[derive(Clone, Debug)]
pub struct LaneAsk {
    /// Every lane of the request, in their fixed order.
    pub lanes: Vec<String>,
    pub count: Count,
    /// Who holds the slots: the process and the run.
    pub holder: String,
    pub per_identity: u32,
    pub outreach_cap: u32,
    pub visits_cap: u32,
    /// Caps start at 20% and grow to 100% over this long from a lane's first request.
    pub ramp_up: Option<std::time::Duration>,
    /// The local day (`YYYY-MM-DD`) the caps count in, and when it ends.
    pub day: String,
    pub day_ends: DateTime<Utc>,
    /// How long a slot is held if its holder dies mid-request.
    pub lease: chrono::Duration,
    /// The outreach input this request sends, recorded in the transaction that lets it go.
    pub sent: Option<super::sent::SentMark>,
}

/// The answer to a [`LaneAsk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Slots taken and the request counted: send it now.
    Entered,
    /// Not yet: a lane is busy or within its gap; ask again at this instant.
    Wait(DateTime<Utc>),
    /// A lane has used its daily cap of this kind of request.
    Capped {
        lane: String,
        used: u32,
        cap: u32,
        until: DateTime<Utc>,
    },
    /// A lane is paused (its identity was reported unusable).
    Paused {
        lane: String,
        until: DateTime<Utc>,
        reason: String,
    },
}

/// A lane's row: next send, pause end and reason, first use.
type LaneRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// One lane as a request of `ask` finds it at `now`.
struct LaneNow {
    next_at: Option<DateTime<Utc>>,
    /// Paused until, and why.
    paused: Option<(DateTime<Utc>, String)>,
    /// Today's cap of the request's kind (ramped) and what was used of it; `None` for reads.
    cap: Option<(u32, u32)>,
}

fn lane_now(tx: &Db, ask: &LaneAsk, lane: &str, now: DateTime<Utc>) -> Result<LaneNow> {
    let row: Option<LaneRow> = tx
        .query_row(
            "SELECT next_at, paused_until, pause_reason, first_used FROM lanes WHERE lane = ?1",
            [lane],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let (next_at, paused, reason, first) = row.unwrap_or_default();
    let paused = paused
        .as_deref()
        .and_then(parse_ts)
        .filter(|u| *u > now)
        .map(|until| (until, reason.unwrap_or_default()));
    let full = match ask.count {
        Count::Outreach => Some(ask.outreach_cap),
        Count::Visit => Some(ask.visits_cap),
        Count::Read => None,
    };
    let cap = match full {
        None => None,
        Some(full) => {
            let first = first.as_deref().and_then(parse_ts).unwrap_or(now);
            let used: u32 = tx
                .query_row(
                    &format!(
                        "SELECT {} FROM lane_days WHERE lane = ?1 AND day = ?2",
                        ask.count.as_str()
                    ),
                    params![lane, ask.day],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            Some((ramped(full, ask.ramp_up, now - first), used))
        }
    };
    Ok(LaneNow {
        next_at: next_at.as_deref().and_then(parse_ts),
        paused,
        cap,
    })
}

/// Counts `n` requests of `ask`'s kind against `lane`'s day (its first use noted).
fn count_requests(tx: &Db, ask: &LaneAsk, lane: &str, n: i64, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        "INSERT INTO lanes (lane, first_used) VALUES (?1, ?2)
         ON CONFLICT(lane) DO UPDATE SET first_used = COALESCE(lanes.first_used, ?2)",
        params![lane, ts(now)],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO lane_days (lane, day, {c}) VALUES (?1, ?2, ?3)
             ON CONFLICT(lane, day) DO UPDATE SET {c} = lane_days.{c} + ?3",
            c = ask.count.as_str()
        ),
        params![lane, ask.day, n],
    )?;
    Ok(())
}

/// Takes a slot in every lane of `ask` at once, or says why not.
pub fn lane_enter(conn: &mut Db, ask: &LaneAsk, now: DateTime<Utc>) -> Result<Entry> {
    let tx = write_tx(conn)?;
    tx.execute("DELETE FROM lane_slots WHERE lease_until < ?1", [ts(now)])?;
    let mut wait: Option<DateTime<Utc>> = None;
    for lane in &ask.lanes {
        let l = lane_now(&tx, ask, lane, now)?;
        if let Some((until, reason)) = l.paused {
            return Ok(Entry::Paused {
                lane: lane.clone(),
                until,
                reason,
            });
        }
        if let Some((cap, used)) = l.cap
            && used >= cap
        {
            return Ok(Entry::Capped {
                lane: lane.clone(),
                used,
                cap,
                until: ask.day_ends,
            });
        }
        let busy: u32 = tx.query_row(
            "SELECT COUNT(*) FROM lane_slots WHERE lane = ?1",
            [lane],
            |r| r.get(0),
        )?;
        if busy >= ask.per_identity {
            wait = Some(wait.unwrap_or(now).max(now));
        }
        if let Some(next) = l.next_at.filter(|n| *n > now) {
            wait = Some(wait.map_or(next, |w| w.max(next)));
        }
    }
    if let Some(at) = wait {
        return Ok(Entry::Wait(at));
    }
    for lane in &ask.lanes {
        tx.execute(
            "INSERT INTO lane_slots (lane, holder, lease_until) VALUES (?1, ?2, ?3)",
            params![lane, ask.holder, ts(now + ask.lease)],
        )?;
        count_requests(&tx, ask, lane, 1, now)?;
    }
    if let Some(mark) = &ask.sent {
        super::sent::mark(&tx, mark, now)?;
    }
    tx.commit()?;
    Ok(Entry::Entered)
}

/// A cap under `ramp_up`: 20% at the lane's first request, growing linearly to all of it.
fn ramped(cap: u32, ramp_up: Option<std::time::Duration>, age: chrono::Duration) -> u32 {
    let Some(ramp) = ramp_up.filter(|r| !r.is_zero()) else {
        return cap;
    };
    let done = age.to_std().unwrap_or_default().as_secs_f64() / ramp.as_secs_f64();
    let share = (0.2 + 0.8 * done).min(1.0);
    ((f64::from(cap) * share).floor() as u32).max(u32::from(cap > 0))
}

/// Frees `holder`'s slots in `lanes`; none of them sends again before `next_at`.
pub fn lane_leave(
    conn: &mut Db,
    lanes: &[String],
    holder: &str,
    next_at: DateTime<Utc>,
) -> Result<()> {
    let tx = write_tx(conn)?;
    for lane in lanes {
        tx.execute(
            "DELETE FROM lane_slots WHERE rowid = (SELECT rowid FROM lane_slots WHERE lane = ?1 AND holder = ?2 LIMIT 1)",
            params![lane, holder],
        )?;
        tx.execute(
            "INSERT INTO lanes (lane, next_at) VALUES (?1, ?2)
             ON CONFLICT(lane) DO UPDATE SET next_at =
                 CASE WHEN COALESCE(lanes.next_at, '') > ?2 THEN lanes.next_at ELSE ?2 END",
            params![lane, ts(next_at)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Pauses `lanes` for every job until `until`.
pub fn lane_pause(
    conn: &mut Db,
    lanes: &[String],
    until: DateTime<Utc>,
    reason: &str,
) -> Result<()> {
    let tx = write_tx(conn)?;
    for lane in lanes {
        tx.execute(
            "INSERT INTO lanes (lane, paused_until, pause_reason) VALUES (?1, ?2, ?3)
             ON CONFLICT(lane) DO UPDATE SET paused_until = ?2, pause_reason = ?3",
            params![lane, ts(until), reason],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Lifts a lane's pause; false when it had none.
pub fn lane_resume(conn: &Db, lane: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE lanes SET paused_until = NULL, pause_reason = NULL WHERE lane = ?1 AND paused_until IS NOT NULL",
        [lane],
    )? > 0)
}

/// One lane as `watchbell lanes` and `status` show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LaneReport {
    pub lane: String,
    pub outreach: u32,
    pub visits: u32,
    pub reads: u32,
    pub in_flight: u32,
    pub paused_until: Option<String>,
    pub pause_reason: Option<String>,
}

/// Every lane known, with its requests on `day` and any pause in force at `now`.
pub fn lane_report(conn: &Db, day: &str, now: DateTime<Utc>) -> Result<Vec<LaneReport>> {
    // A database no daemon of this version has opened yet has no lanes (read-only: no
    // migration). A PostgreSQL database is migrated by whoever connects first.
    let known: bool = match conn.as_lite() {
        None => true,
        Some(c) => c.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lanes')",
            [],
            |r| r.get(0),
        )?,
    };
    if !known {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT l.lane, COALESCE(d.outreach, 0), COALESCE(d.visits, 0), COALESCE(d.reads, 0),
                (SELECT COUNT(*) FROM lane_slots s WHERE s.lane = l.lane AND s.lease_until >= ?2),
                CASE WHEN l.paused_until > ?2 THEN l.paused_until END,
                CASE WHEN l.paused_until > ?2 THEN l.pause_reason END
         FROM lanes l LEFT JOIN lane_days d ON d.lane = l.lane AND d.day = ?1 ORDER BY l.lane",
    )?;
    let rows = stmt.query_map(params![day, ts(now)], |r| {
        Ok(LaneReport {
            lane: r.get(0)?,
            outreach: r.get(1)?,
            visits: r.get(2)?,
            reads: r.get(3)?,
            in_flight: r.get(4)?,
            paused_until: r.get(5)?,
            pause_reason: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<super::db::Result<_>>()?)
}

/// The next plan-rate slot, shared by every process on the database: the returned instant, no
/// earlier than `now`, and the one after it `interval` later.
pub fn pace_slot(
    conn: &mut Db,
    interval: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>> {
    let tx = write_tx(conn)?;
    let next: Option<String> = tx
        .query_row("SELECT next_slot FROM pace WHERE id = 1", (), |r| r.get(0))
        .optional()?;
    let slot = next
        .as_deref()
        .and_then(parse_ts)
        .map_or(now, |n| n.max(now));
    let after = slot + chrono::Duration::from_std(interval).unwrap_or_default();
    tx.execute(
        "INSERT INTO pace (id, next_slot) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET next_slot = ?1",
        [ts(after)],
    )?;
    tx.commit()?;
    Ok(slot)
}

/// Adds time a run spent waiting for its lanes.
pub fn add_lane_wait(conn: &Db, uid: &str, ms: u64) -> Result<()> {
    conn.execute(
        "UPDATE runs SET lane_wait_ms = lane_wait_ms + ?2 WHERE uid = ?1",
        params![uid, ms as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(lanes: &[&str], count: Count) -> LaneAsk {
        LaneAsk {
            lanes: lanes.iter().map(|l| (*l).to_string()).collect(),
            count,
            holder: "h".into(),
            per_identity: 1,
            outreach_cap: 2,
            visits_cap: 5,
            ramp_up: None,
            day: "2026-05-01".into(),
            day_ends: parse_ts("2026-05-02T00:00:00Z").unwrap(),
            lease: chrono::Duration::minutes(1),
            sent: None,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        parse_ts(s).unwrap()
    }

    #[test]
    fn one_request_in_flight_per_lane_then_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::Store::open(&dir.path().join("w.db")).unwrap();
        let now = t("2026-05-01T10:00:00Z");
        let a = ask(&["identity:a"], Count::Read);
        let enter = |a: LaneAsk, at| s.call_blocking(move |c| lane_enter(c, &a, at));
        assert_eq!(enter(a.clone(), now).unwrap(), Entry::Entered);
        assert_eq!(enter(a.clone(), now).unwrap(), Entry::Wait(now), "busy");
        let gap_end = t("2026-05-01T10:00:07Z");
        s.call_blocking(move |c| lane_leave(c, &["identity:a".into()], "h", gap_end))
            .unwrap();
        assert_eq!(
            enter(a.clone(), now).unwrap(),
            Entry::Wait(gap_end),
            "within the gap"
        );
        assert_eq!(enter(a.clone(), gap_end).unwrap(), Entry::Entered);
        // A request on two lanes waits for the busier.
        let both = ask(&["identity:a", "identity:b"], Count::Read);
        assert_eq!(enter(both, gap_end).unwrap(), Entry::Wait(gap_end));
    }

    #[test]
    fn caps_count_per_lane_and_day_and_pauses_stop_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::Store::open(&dir.path().join("w.db")).unwrap();
        let mut now = t("2026-05-01T10:00:00Z");
        for _ in 0..2 {
            let a = ask(&["workspace"], Count::Outreach);
            assert_eq!(
                s.call_blocking(move |c| lane_enter(c, &a, now)).unwrap(),
                Entry::Entered
            );
            s.call_blocking(move |c| lane_leave(c, &["workspace".into()], "h", now))
                .unwrap();
            now += chrono::Duration::seconds(1);
        }
        let a = ask(&["workspace"], Count::Outreach);
        let capped = s.call_blocking(move |c| lane_enter(c, &a, now)).unwrap();
        assert!(
            matches!(
                capped,
                Entry::Capped {
                    used: 2,
                    cap: 2,
                    ..
                }
            ),
            "{capped:?}"
        );
        let mut next_day = ask(&["workspace"], Count::Outreach);
        next_day.day = "2026-05-02".into();
        assert_eq!(
            s.call_blocking(move |c| lane_enter(c, &next_day, now))
                .unwrap(),
            Entry::Entered
        );
        s.call_blocking(move |c| lane_leave(c, &["workspace".into()], "h", now))
            .unwrap();
        let until = t("2026-05-01T16:00:00Z");
        s.call_blocking(move |c| {
            lane_pause(
                c,
                &["workspace".into()],
                until,
                "NO_VALID_ACCOUNT_CONFIGURED",
            )
        })
        .unwrap();
        let a = ask(&["workspace"], Count::Read);
        assert!(matches!(
            s.call_blocking(move |c| lane_enter(c, &a, now)).unwrap(),
            Entry::Paused { .. }
        ));
        assert!(s.call_blocking(|c| lane_resume(c, "workspace")).unwrap());
        let a = ask(&["workspace"], Count::Read);
        assert_eq!(
            s.call_blocking(move |c| lane_enter(c, &a, now)).unwrap(),
            Entry::Entered
        );
    }

    #[test]
    fn ramp_up_starts_at_a_fifth() {
        let week = Some(std::time::Duration::from_hours(7 * 24));
        assert_eq!(ramped(25, week, chrono::Duration::zero()), 5);
        assert_eq!(ramped(25, week, chrono::Duration::days(7)), 25);
        assert_eq!(ramped(25, week, chrono::Duration::days(30)), 25);
        assert_eq!(ramped(1, week, chrono::Duration::zero()), 1);
        assert_eq!(ramped(25, None, chrono::Duration::zero()), 25);
    }

    #[test]
    fn the_plan_slot_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::Store::open(&dir.path().join("w.db")).unwrap();
        let now = t("2026-05-01T10:00:00Z");
        let i = std::time::Duration::from_millis(500);
        let first = s.call_blocking(move |c| pace_slot(c, i, now)).unwrap();
        let second = s.call_blocking(move |c| pace_slot(c, i, now)).unwrap();
        assert_eq!((first, second), (now, t("2026-05-01T10:00:00.500Z")));
    }
}

/// What a lane lets an async submission send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// Send the inputs at `keep` (their requests counted); those at `already` were sent by this
    /// job before (outreach) and are not again; the rest exceed today's caps.
    Granted { keep: Vec<u32>, already: Vec<u32> },
    /// Nothing is sent: a lane is paused, or has nothing left under a cap today
    /// ([`Entry::Paused`] or [`Entry::Capped`], as for a live request).
    Refused(Entry),
}

/// An async submission's inputs `(index, identity)` against the lanes of `ask`, in one
/// transaction: each input counts one request of its kind against every lane's daily cap, the
/// submission is cut to what the caps leave, and (outreach) an input the job sent before is
/// left out while the rest are recorded sent.
pub fn lane_reserve(
    conn: &mut Db,
    ask: &LaneAsk,
    (job, run_id): (&str, i64),
    inputs: &[(u32, String)],
    now: DateTime<Utc>,
) -> Result<Reserve> {
    let tx = write_tx(conn)?;
    let outreach = ask.count == Count::Outreach;
    let mut already = Vec::new();
    let mut fresh = Vec::new();
    for (idx, key) in inputs {
        if outreach && super::sent::lookup(&tx, job, key)?.is_some_and(|r| r.run_id != run_id) {
            already.push(*idx);
        } else {
            fresh.push((*idx, key));
        }
    }
    let mut left = u32::MAX;
    for lane in &ask.lanes {
        let l = lane_now(&tx, ask, lane, now)?;
        if let Some((until, reason)) = l.paused {
            return Ok(Reserve::Refused(Entry::Paused {
                lane: lane.clone(),
                until,
                reason,
            }));
        }
        let Some((cap, used)) = l.cap else { continue };
        if used >= cap && !fresh.is_empty() {
            return Ok(Reserve::Refused(Entry::Capped {
                lane: lane.clone(),
                used,
                cap,
                until: ask.day_ends,
            }));
        }
        left = left.min(cap.saturating_sub(used));
    }
    fresh.truncate(left as usize);
    let n = fresh.len() as i64;
    for lane in ask.lanes.iter().filter(|_| n > 0) {
        count_requests(&tx, ask, lane, n, now)?;
    }
    for (idx, key) in fresh.iter().filter(|_| outreach) {
        tx.execute(
            "INSERT INTO sent_inputs (job, input, run_id, input_idx, state, at)
             VALUES (?1, ?2, ?3, ?4, 'sent', ?5) ON CONFLICT DO NOTHING",
            params![job, key, run_id, idx, ts(now)],
        )?;
    }
    for idx in &already {
        tx.execute(
            "UPDATE run_inputs SET outcome = 'already_sent' WHERE run_id = ?1 AND idx = ?2",
            params![run_id, idx],
        )?;
    }
    let kept: std::collections::HashSet<u32> = fresh.iter().map(|(i, _)| *i).collect();
    let cut: Vec<u32> = inputs
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| !kept.contains(i) && !already.contains(i))
        .collect();
    cut_inputs(&tx, run_id, &cut)?;
    tx.commit()?;
    Ok(Reserve::Granted {
        keep: fresh.into_iter().map(|(i, _)| i).collect(),
        already,
    })
}

/// Inputs past today's caps: a chained item goes back to wait for the job's next run; an input
/// of a static list fails, said why.
fn cut_inputs(tx: &Db, run_id: i64, cut: &[u32]) -> Result<()> {
    for idx in cut {
        tx.execute(
            "UPDATE chain_items SET state = 'pending', run_id = NULL
             WHERE run_id = ?1 AND key = (SELECT src_key FROM run_inputs WHERE run_id = ?1 AND idx = ?2)",
            params![run_id, idx],
        )?;
        tx.execute(
            "UPDATE run_inputs SET outcome = CASE WHEN src_key IS NULL THEN 'failed' ELSE 'released' END,
                error_label = 'DAILY_CAP', error_message = 'past the daily cap when the run was sent'
             WHERE run_id = ?1 AND idx = ?2",
            params![run_id, idx],
        )?;
    }
    Ok(())
}
