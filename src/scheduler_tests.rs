use std::time::Duration;

use super::*;
use crate::schedule::{CronExpr, Fold, Gap};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn entry(name: &str, cron: &str, tz: &str) -> Entry {
    Entry {
        name: name.into(),
        schedule: Schedule::new(
            name,
            CronExpr::parse(cron).unwrap(),
            tz.parse().unwrap(),
            Gap::Shift,
            Fold::First,
            Duration::ZERO,
        ),
        fingerprint: {
            use std::hash::{DefaultHasher, Hash, Hasher};
            let mut h = DefaultHasher::new();
            (name, cron, tz).hash(&mut h);
            h.finish()
        },
        after: None,
    }
}

/// Steps the test clock from tick to tick for `span`, collecting every due tick.
fn drive(s: &mut Scheduler, handle: &crate::clock::TestClock, until: DateTime<Utc>) -> Vec<Due> {
    let mut all = Vec::new();
    while let Some(at) = s.next_fire() {
        if at > until {
            break;
        }
        handle.set(at);
        all.extend(s.take_due(at));
    }
    all
}

#[test]
fn hours_of_per_second_ticks_fire_each_exactly_once_with_no_drift() {
    let start = t("2026-05-01T00:00:00Z");
    let (clock, handle) = Clock::test(start);
    let mut s = Scheduler::new(clock, vec![entry("s", "* * * * * *", "UTC")]);
    let due = drive(&mut s, &handle, start + chrono::Duration::hours(3));
    assert_eq!(due.len(), 3 * 3600);
    for (i, d) in due.iter().enumerate() {
        assert_eq!(d.nominal, start + chrono::Duration::seconds(i as i64 + 1));
        assert!(d.missed.is_empty());
    }
}

#[test]
fn a_dst_day_in_paris_fires_the_shifted_tick_once() {
    let start = t("2026-03-28T12:00:00Z");
    let (clock, handle) = Clock::test(start);
    let mut s = Scheduler::new(
        clock,
        vec![
            entry("daily", "30 2 * * *", "Europe/Paris"),
            entry("q", "*/15 * * * *", "Europe/Paris"),
        ],
    );
    let due = drive(&mut s, &handle, t("2026-03-30T12:00:00Z"));
    let daily: Vec<_> = due
        .iter()
        .filter(|d| &*d.job == "daily")
        .map(|d| d.nominal)
        .collect();
    assert_eq!(
        daily,
        [t("2026-03-29T01:00:00Z"), t("2026-03-30T00:30:00Z")]
    );
    // The quarter-hourly job follows real time: 48 hours, 4 an hour.
    assert_eq!(due.iter().filter(|d| &*d.job == "q").count(), 48 * 4);
}

#[test]
fn a_clock_jump_forward_fires_once_and_lists_what_it_passed_over() {
    let start = t("2026-05-01T10:00:30Z");
    let (clock, handle) = Clock::test(start);
    let mut s = Scheduler::new(clock, vec![entry("m", "* * * * *", "UTC")]);
    handle.set(t("2026-05-01T10:05:10Z"));
    let due = s.take_due(handle.now());
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].nominal, t("2026-05-01T10:05:00Z"));
    assert_eq!(due[0].missed.len(), 4);
    assert_eq!(due[0].missed[0], t("2026-05-01T10:01:00Z"));
    assert_eq!(s.next_fire(), Some(t("2026-05-01T10:06:00Z")));
}

#[test]
fn a_clock_jump_back_never_fires_a_tick_twice() {
    let start = t("2026-05-01T10:00:30Z");
    let (clock, handle) = Clock::test(start);
    let mut s = Scheduler::new(clock, vec![entry("m", "* * * * *", "UTC")]);
    let first = drive(&mut s, &handle, t("2026-05-01T10:03:00Z"));
    assert_eq!(first.len(), 3);
    handle.set(t("2026-05-01T09:00:00Z")); // back an hour
    assert!(s.take_due(handle.now()).is_empty());
    assert_eq!(s.next_fire(), Some(t("2026-05-01T10:04:00Z")));
}

#[test]
fn reload_keeps_unchanged_timers_and_restarts_changed_ones() {
    let start = t("2026-05-01T10:00:00Z");
    let (clock, handle) = Clock::test(start);
    let mut s = Scheduler::new(
        clock,
        vec![
            entry("a", "*/10 * * * *", "UTC"),
            entry("b", "0 * * * *", "UTC"),
        ],
    );
    handle.set(t("2026-05-01T10:05:00Z"));
    s.reload(vec![
        entry("a", "*/10 * * * *", "UTC"),
        entry("c", "* * * * *", "UTC"),
    ]);
    let mut next: Vec<_> = s.upcoming();
    next.sort();
    assert_eq!(
        next,
        [
            ("a".to_string(), t("2026-05-01T10:10:00Z")),
            ("c".to_string(), t("2026-05-01T10:06:00Z"))
        ]
    );
    assert_eq!(s.next_fire(), Some(t("2026-05-01T10:06:00Z")));
}

#[test]
fn jitter_delays_the_fire_but_not_the_nominal_tick() {
    let start = t("2026-05-01T10:00:00Z");
    let (clock, handle) = Clock::test(start);
    let mut e = entry("j", "* * * * *", "UTC");
    e.schedule.jitter_offset = Duration::from_secs(7);
    let mut s = Scheduler::new(clock, vec![e]);
    assert_eq!(s.next_fire(), Some(t("2026-05-01T10:01:07Z")));
    handle.set(t("2026-05-01T10:01:03Z"));
    assert!(s.take_due(handle.now()).is_empty());
    handle.set(t("2026-05-01T10:01:07Z"));
    assert_eq!(
        s.take_due(handle.now())[0].nominal,
        t("2026-05-01T10:01:00Z")
    );
}

#[tokio::test]
async fn the_loop_sends_due_ticks_as_the_test_clock_moves() {
    let start = t("2026-05-01T10:00:00Z");
    let (clock, handle) = Clock::test(start);
    let s = Scheduler::new(clock, vec![entry("m", "* * * * *", "UTC")]);
    let (tx, mut rx) = mpsc::channel(16);
    let (_ctx, crx) = mpsc::channel(1);
    let stop = CancellationToken::new();
    let hb = Heartbeat::default();
    let task = tokio::spawn(s.run(tx, crx, hb.clone(), stop.clone()));
    handle.set(t("2026-05-01T10:01:00Z"));
    let d = rx.recv().await.unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].nominal, t("2026-05-01T10:01:00Z"));
    handle.set(t("2026-05-01T10:02:00Z"));
    assert_eq!(
        rx.recv().await.unwrap()[0].nominal,
        t("2026-05-01T10:02:00Z")
    );
    assert!(hb.last().is_some());
    stop.cancel();
    task.await.unwrap();
}
