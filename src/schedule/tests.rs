use super::reference::RefCron;
use super::*;
use proptest::prelude::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn sched(expr: &str, tz: &str, gap: Gap, fold: Fold) -> Schedule {
    let tz: Tz = tz.parse().unwrap();
    Schedule::new(
        "t",
        CronExpr::parse(expr).unwrap(),
        tz,
        gap,
        fold,
        Duration::ZERO,
    )
}

fn plain(expr: &str, tz: &str) -> Schedule {
    sched(expr, tz, Gap::Shift, Fold::First)
}

/// The next `n` fires as "UTC instant dst-mark" strings.
fn fires(s: &Schedule, after: &str, n: usize) -> Vec<String> {
    s.upcoming(utc(after), n)
        .iter()
        .map(|f| {
            let mark = f.dst.map_or("", Dst::as_str);
            format!("{} {}", f.at.format("%Y-%m-%dT%H:%M:%SZ"), mark)
                .trim_end()
                .to_string()
        })
        .collect()
}

#[test]
fn ordinary_expressions_fire_where_expected() {
    assert_eq!(
        fires(&plain("*/15 * * * *", "UTC"), "2026-05-01T10:07:00Z", 3),
        [
            "2026-05-01T10:15:00Z",
            "2026-05-01T10:30:00Z",
            "2026-05-01T10:45:00Z"
        ]
    );
    // 02:30 Paris on weekdays: Friday 1 May 2026 is CEST (+2).
    assert_eq!(
        fires(
            &plain("30 2 * * 1-5", "Europe/Paris"),
            "2026-04-30T12:00:00Z",
            2
        ),
        ["2026-05-01T00:30:00Z", "2026-05-04T00:30:00Z"]
    );
    assert_eq!(
        fires(&plain("@monthly", "UTC"), "2026-05-15T00:00:00Z", 2),
        ["2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"]
    );
    assert_eq!(
        fires(
            &plain("0 9 * JAN,FEB SUN", "UTC"),
            "2026-01-01T00:00:00Z",
            1
        ),
        ["2026-01-04T09:00:00Z"]
    );
}

#[test]
fn zero_and_seven_are_both_sunday() {
    let a = fires(&plain("0 12 * * 0", "UTC"), "2026-05-01T00:00:00Z", 3);
    let b = fires(&plain("0 12 * * 7", "UTC"), "2026-05-01T00:00:00Z", 3);
    assert_eq!(a, b);
    assert_eq!(a[0], "2026-05-03T12:00:00Z");
}

#[test]
fn six_fields_lead_with_seconds() {
    assert_eq!(
        fires(&plain("*/20 * * * * *", "UTC"), "2026-05-01T10:00:05Z", 3),
        [
            "2026-05-01T10:00:20Z",
            "2026-05-01T10:00:40Z",
            "2026-05-01T10:01:00Z"
        ]
    );
    assert!(CronExpr::parse("*/20 * * * * *").unwrap().has_seconds());
    assert!(!CronExpr::parse("@hourly").unwrap().has_seconds());
}

#[test]
fn last_weekday_and_nth_specifiers_are_accepted() {
    // Last day of February 2026, the weekday nearest the 15th of August 2026 (a Saturday -> Friday
    // 14th), the second Tuesday of June 2026.
    assert_eq!(
        fires(&plain("0 0 L 2 *", "UTC"), "2026-01-01T00:00:00Z", 1),
        ["2026-02-28T00:00:00Z"]
    );
    assert_eq!(
        fires(&plain("0 0 15W 8 *", "UTC"), "2026-01-01T00:00:00Z", 1),
        ["2026-08-14T00:00:00Z"]
    );
    assert_eq!(
        fires(&plain("0 0 * 6 2#2", "UTC"), "2026-01-01T00:00:00Z", 1),
        ["2026-06-09T00:00:00Z"]
    );
}

#[test]
fn vixie_or_rule_when_both_day_fields_are_restricted() {
    // The 13th OR any Friday. May 2026: Fri 1st, Fri 8th, Wed 13th, Fri 15th.
    assert_eq!(
        fires(&plain("0 0 13 * 5", "UTC"), "2026-04-30T12:00:00Z", 4),
        [
            "2026-05-01T00:00:00Z",
            "2026-05-08T00:00:00Z",
            "2026-05-13T00:00:00Z",
            "2026-05-15T00:00:00Z"
        ]
    );
}

#[test]
fn a_starred_day_field_makes_the_day_rule_an_and_as_in_vixie() {
    // Odd days of the month that are also Mondays: May 2026 Mondays are 4, 11, 18, 25 -> 11, 25.
    assert_eq!(
        fires(&plain("0 0 */2 * 1", "UTC"), "2026-05-01T00:00:00Z", 2),
        ["2026-05-11T00:00:00Z", "2026-05-25T00:00:00Z"]
    );
}

#[test]
fn paris_spring_gap_shifts_to_the_first_instant_after_it() {
    // The acceptance example: 02:30 on 29 March 2026 does not exist in Paris; 03:00 CEST = 01:00Z.
    assert_eq!(
        fires(
            &plain("30 2 * * *", "Europe/Paris"),
            "2026-03-28T00:00:00Z",
            3
        ),
        [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z gap",
            "2026-03-30T00:30:00Z"
        ]
    );
}

#[test]
fn paris_spring_gap_is_dropped_with_skip() {
    let s = sched("30 2 * * *", "Europe/Paris", Gap::Skip, Fold::First);
    assert_eq!(
        fires(&s, "2026-03-28T00:00:00Z", 2),
        ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]
    );
}

#[test]
fn two_gap_times_fire_once_after_the_gap() {
    let s = plain("0,30 2 * * *", "Europe/Paris");
    assert_eq!(
        fires(&s, "2026-03-28T23:00:00Z", 2),
        ["2026-03-29T01:00:00Z gap", "2026-03-30T00:00:00Z"]
    );
}

#[test]
fn paris_autumn_fold_follows_each_policy() {
    // 02:30 on 25 October 2026 happens at 00:30Z (CEST) and 01:30Z (CET).
    let after = "2026-10-24T12:00:00Z";
    let first = sched("30 2 * * *", "Europe/Paris", Gap::Shift, Fold::First);
    let last = sched("30 2 * * *", "Europe/Paris", Gap::Shift, Fold::Last);
    let both = sched("30 2 * * *", "Europe/Paris", Gap::Shift, Fold::Both);
    assert_eq!(
        fires(&first, after, 2),
        ["2026-10-25T00:30:00Z fold", "2026-10-26T01:30:00Z"]
    );
    assert_eq!(
        fires(&last, after, 2),
        ["2026-10-25T01:30:00Z fold", "2026-10-26T01:30:00Z"]
    );
    assert_eq!(
        fires(&both, after, 3),
        [
            "2026-10-25T00:30:00Z fold",
            "2026-10-25T01:30:00Z fold",
            "2026-10-26T01:30:00Z"
        ]
    );
}

#[test]
fn new_york_gap_and_fold() {
    // 8 March 2026: 02:00 EST -> 03:00 EDT. 02:30 shifts to 03:00 EDT = 07:00Z.
    assert_eq!(
        fires(
            &plain("30 2 * * *", "America/New_York"),
            "2026-03-07T12:00:00Z",
            2
        ),
        ["2026-03-08T07:00:00Z gap", "2026-03-09T06:30:00Z"]
    );
    let skip = sched("30 2 * * *", "America/New_York", Gap::Skip, Fold::First);
    assert_eq!(
        fires(&skip, "2026-03-07T12:00:00Z", 2),
        ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]
    );
    // 1 November 2026: 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
    let after = "2026-10-31T12:00:00Z";
    let last = sched("30 1 * * *", "America/New_York", Gap::Shift, Fold::Last);
    let both = sched("30 1 * * *", "America/New_York", Gap::Shift, Fold::Both);
    assert_eq!(
        fires(&plain("30 1 * * *", "America/New_York"), after, 1),
        ["2026-11-01T05:30:00Z fold"]
    );
    assert_eq!(fires(&last, after, 1), ["2026-11-01T06:30:00Z fold"]);
    assert_eq!(
        fires(&both, after, 2),
        ["2026-11-01T05:30:00Z fold", "2026-11-01T06:30:00Z fold"]
    );
}

#[test]
fn lord_howe_half_hour_gap_and_fold() {
    // 4 October 2026: 02:00 +10:30 -> 02:30 +11:00. 02:15 shifts to 02:30 +11 = 15:30Z on the 3rd.
    let gap = "2026-10-02T00:00:00Z";
    assert_eq!(
        fires(&plain("15 2 * * *", "Australia/Lord_Howe"), gap, 2),
        ["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z gap"]
    );
    let skip = sched("15 2 * * *", "Australia/Lord_Howe", Gap::Skip, Fold::First);
    assert_eq!(
        fires(&skip, gap, 2),
        ["2026-10-02T15:45:00Z", "2026-10-04T15:15:00Z"]
    );
    // 5 April 2026: 02:00 +11 -> 01:30 +10:30. 01:45 happens at 14:45Z and 15:15Z on the 4th.
    let fold = "2026-04-03T00:00:00Z";
    let expr = "45 1 * * *";
    let tz = "Australia/Lord_Howe";
    assert_eq!(
        fires(&sched(expr, tz, Gap::Shift, Fold::First), fold, 2),
        ["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z fold"]
    );
    assert_eq!(
        fires(&sched(expr, tz, Gap::Shift, Fold::Last), fold, 2),
        ["2026-04-03T14:45:00Z", "2026-04-04T15:15:00Z fold"]
    );
    assert_eq!(
        fires(&sched(expr, tz, Gap::Shift, Fold::Both), fold, 3),
        [
            "2026-04-03T14:45:00Z",
            "2026-04-04T14:45:00Z fold",
            "2026-04-04T15:15:00Z fold"
        ]
    );
}

#[test]
fn quarter_hourly_jobs_follow_real_time_across_a_fold_and_a_gap() {
    let s = plain("*/15 * * * *", "America/New_York");
    // Fall back: every 15 real minutes through both passes of 01:xx.
    let got = s.upcoming(utc("2026-11-01T04:50:00Z"), 10);
    for pair in got.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, chrono::Duration::minutes(15));
    }
    assert_eq!(got[0].at, utc("2026-11-01T05:00:00Z"));
    // Spring forward: 01:45 EST is followed by 03:00 EDT, 15 real minutes later.
    let got = s.upcoming(utc("2026-03-08T06:40:00Z"), 2);
    assert_eq!(got[0].at, utc("2026-03-08T06:45:00Z"));
    assert_eq!(got[1].at, utc("2026-03-08T07:00:00Z"));
    assert_eq!(got[1].dst, None);
}

#[test]
fn jitter_is_stable_and_bounded() {
    let j = Duration::from_mins(1);
    assert_eq!(
        jitter_offset("cto-search", j),
        jitter_offset("cto-search", j)
    );
    assert_ne!(
        jitter_offset("cto-search", j),
        jitter_offset("cfo-search", j)
    );
    assert!(jitter_offset("cto-search", j) < j);
    assert_eq!(jitter_offset("x", Duration::ZERO), Duration::ZERO);
}

#[test]
fn bad_expressions_are_rejected() {
    for bad in [
        "",
        "* * *",
        "61 * * * *",
        "* * * * * * *",
        "0 0 30 2 * extra",
        "x * * * *",
    ] {
        assert!(CronExpr::parse(bad).is_err(), "{bad:?} should be rejected");
    }
}

// ---- properties --------------------------------------------------------------------------------

fn field(lo: u32, hi: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        (lo..=hi).prop_map(|v| v.to_string()),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        (1u32..=(hi - lo).max(1)).prop_map(|s| format!("*/{s}")),
        (lo..=hi, lo..=hi).prop_map(|(a, b)| format!("{a},{b}")),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    (
        field(0, 59),
        field(0, 23),
        field(1, 28),
        field(1, 12),
        field(0, 6),
    )
        .prop_map(|(m, h, d, mo, w)| format!("{m} {h} {d} {mo} {w}"))
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("UTC"),
        Just("Asia/Tokyo"),
        Just("Asia/Kolkata"),
        Just("Europe/Paris"),
        Just("America/New_York"),
        Just("Australia/Lord_Howe"),
        Just("America/Sao_Paulo"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn next_is_later_matches_and_nothing_matches_in_between(
        e in expr(), tz in zone(), secs in 1_700_000_000i64..1_900_000_000
    ) {
        let s = plain(&e, tz);
        let t = DateTime::from_timestamp(secs, 0).unwrap();
        let Some(next) = s.next_after(t) else { return Ok(()) };
        prop_assert!(next.at > t);
        // Compare with the independent matcher wherever DST cannot bend local time between the
        // two instants (the DST cases have their own tests above).
        if s.quiet(t) && s.offset_secs(t) == s.offset_secs(next.at) && next.dst.is_none() {
            let local_t = s.local(t);
            let local_next = next.local.naive_local();
            prop_assert!(s.cron.matches_naive(local_next));
            let reference = RefCron::parse(&e).next_after(local_t);
            prop_assert_eq!(reference, Some(local_next), "expr {} in {} after {}", e, tz, t);
        }
    }
}
