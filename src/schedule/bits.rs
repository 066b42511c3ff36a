//! A cron pattern as bitsets: everything the next-fire search needs, in 32 bytes. croner keeps
//! one byte per value of every field, its 5,000-entry year table included (about 5 KB a
//! pattern, and most of its parse time); with 10,000 jobs that table was half the daemon's
//! memory and most of its start. The common forms (numbers, names, `*`, ranges, steps, lists)
//! are read straight into bits here; anything else goes to croner, whose answer is read into
//! bits the same way. Patterns with `L`, `W` or `#` (whose days depend on the month) keep
//! croner's form. A property test holds both readings to croner's.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use croner::Cron;

/// The values each field allows, one bit per value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bits {
    pub(super) seconds: u64,
    pub(super) minutes: u64,
    /// Bits 0-23.
    pub(super) hours: u32,
    /// Bits 1-31.
    pub(super) dom: u32,
    /// Bits 1-12.
    pub(super) months: u16,
    /// Bits 0-6, Sunday = 0.
    pub(super) dow: u8,
    /// How the two day fields combine (croner's rule, fixed at parse).
    day_rule: DayRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DayRule {
    /// Day of month is `*`: the weekday decides (and the other way round).
    DowOnly,
    DomOnly,
    Either,
    Both,
}

/// How far ahead the search looks before saying "never": the Gregorian calendar's whole cycle.
const MAX_YEARS: i32 = 400;

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field of the common form: `*`, `N`, `A-B`, `*/S`, `A-B/S`, lists of them; names where
/// `names` are given (their index plus `lo`). `None` for anything else.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Option<u64> {
    let value = |s: &str| -> Option<u32> {
        let v = if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() && s.len() <= 2 {
            s.parse().ok()?
        } else {
            lo + names.iter().position(|n| n.eq_ignore_ascii_case(s))? as u32
        };
        (lo..=hi).contains(&v).then_some(v)
    };
    let mut mask = 0u64;
    for part in text.split(',') {
        let (range, stepped) = match part.split_once('/') {
            Some((r, st)) if st.bytes().all(|b| b.is_ascii_digit()) && st.len() <= 2 => {
                (r, Some(st.parse::<u32>().ok().filter(|st| *st > 0)?))
            }
            Some(_) => return None,
            None => (part, None),
        };
        let step = stepped.unwrap_or(1);
        let (a, b) = match range.split_once('-') {
            _ if range == "*" => (lo, hi),
            Some((a, b)) => (value(a)?, value(b)?),
            None if stepped.is_none() => (value(range)?, value(range)?),
            None => return None, // `N/S`: croner refuses it (outside its sloppy mode)
        };
        if a > b {
            return None;
        }
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Some(mask)
}

impl Bits {
    /// The bits of an expression in the common form, read without croner; `None` for anything
    /// else (macros, `?`, `L`, `W`, `#`, `+`, odd spacing), which croner reads.
    pub fn parse(text: &str, dom_and_dow: bool) -> Option<Bits> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let (s, rest) = match f.len() {
            5 => ("0", &f[..]),
            6 => (f[0], &f[1..]),
            _ => return None,
        };
        // croner reads `SUN` as 0 alone but as 7 closing a range (`0-SUN`, `SUN-SUN`: every
        // day): such ranges are left to it.
        if rest[4]
            .split(',')
            .any(|p| p.contains('-') && p.to_ascii_uppercase().contains("SUN"))
        {
            return None;
        }
        let mut dow = field(rest[4], 0, 7, &DAYS)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & 0x7f; // 7 is Sunday
        }
        let day_rule = match (rest[2] == "*", rest[4] == "*") {
            (true, _) => DayRule::DowOnly,
            (false, true) => DayRule::DomOnly,
            _ if dom_and_dow => DayRule::Both,
            _ => DayRule::Either,
        };
        Some(Bits {
            seconds: field(s, 0, 59, &[])?,
            minutes: field(rest[0], 0, 59, &[])?,
            hours: field(rest[1], 0, 23, &[])? as u32,
            dom: field(rest[2], 1, 31, &[])? as u32,
            months: field(rest[3], 1, 12, &MONTHS)? as u16,
            dow: dow as u8,
            day_rule,
        })
    }

    /// The bits of `cron`, or `None` when it uses `L`, `W` or `#`.
    pub fn of(cron: &Cron) -> Option<Bits> {
        let p = &cron.pattern;
        if p.days.has_modifiers() || p.days_of_week.has_modifiers() {
            return None;
        }
        Some(Bits::unmodified(cron))
    }

    /// The bits of `cron` without its `L`, `W` and `#` days: exact for the time of day and the
    /// months, which is what describing a modified pattern needs from them.
    pub(super) fn unmodified(cron: &Cron) -> Bits {
        let p = &cron.pattern;
        let mask = |lo: u32, hi: u32, f: &dyn Fn(u32) -> bool| -> u64 {
            (lo..=hi).filter(|v| f(*v)).fold(0, |m, v| m | (1 << v))
        };
        let values = |vs: Vec<u16>, hi: u16| {
            vs.into_iter()
                .filter(|v| *v <= hi)
                .fold(0u64, |m, v| m | (1 << v))
        };
        let day_rule = match (p.is_dom_wildcard(), p.is_dow_wildcard()) {
            (true, _) => DayRule::DowOnly,
            (false, true) => DayRule::DomOnly,
            _ if p.matches_dom_and_dow() => DayRule::Both,
            _ => DayRule::Either,
        };
        Bits {
            seconds: mask(0, 59, &|v| p.second_match(v).unwrap_or(false)),
            minutes: mask(0, 59, &|v| p.minute_match(v).unwrap_or(false)),
            hours: mask(0, 23, &|v| p.hour_match(v).unwrap_or(false)) as u32,
            dom: values(p.days.values(), 31) as u32,
            months: mask(1, 12, &|v| p.month_match(v).unwrap_or(false)) as u16,
            // croner reads weekday bits 0-6 only (7 is folded into 0 when parsed).
            dow: values(p.days_of_week.values(), 6) as u8,
            day_rule,
        }
    }

    pub(super) fn day_rule(&self) -> DayRule {
        self.day_rule
    }

    /// True when every hour of the day has a fire.
    pub fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    fn day(&self, d: NaiveDate) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        match self.day_rule {
            // croner: a `*` field leaves the decision to the other one (both `*`: every day).
            DayRule::DowOnly => dow,
            DayRule::DomOnly => dom,
            DayRule::Either => dom || dow,
            DayRule::Both => dom && dow,
        }
    }

    pub fn matches(&self, t: NaiveDateTime) -> bool {
        self.months & (1 << t.month()) != 0
            && self.day(t.date())
            && self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
            && self.seconds & (1 << t.second()) != 0
    }

    /// The first matching second strictly after `t`.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut c = t.with_nanosecond(0)? + chrono::Duration::seconds(1);
        let limit = c.year() + MAX_YEARS;
        while c.year() <= limit {
            let date = c.date();
            let Some(month) = next_bit(u64::from(self.months), c.month()) else {
                c = NaiveDate::from_ymd_opt(c.year() + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            };
            if month != c.month() {
                c = NaiveDate::from_ymd_opt(c.year(), month, 1)?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            if !self.day(date) {
                c = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            }
            let Some(hour) = next_bit(u64::from(self.hours), c.hour()) else {
                c = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
                continue;
            };
            if hour != c.hour() {
                c = date.and_hms_opt(hour, 0, 0)?;
                continue;
            }
            let Some(minute) = next_bit(self.minutes, c.minute()) else {
                c = date.and_hms_opt(hour, 0, 0)? + chrono::Duration::hours(1);
                continue;
            };
            if minute != c.minute() {
                c = date.and_hms_opt(hour, minute, 0)?;
                continue;
            }
            match next_bit(self.seconds, c.second()) {
                Some(second) => return date.and_hms_opt(hour, minute, second),
                None => c = date.and_hms_opt(hour, minute, 0)? + chrono::Duration::minutes(1),
            }
        }
        None
    }
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    let rest = mask.checked_shr(from)?;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::schedule::CronExpr;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn modifiers_keep_crons_form_and_the_rest_are_bits() {
        let cron = |t: &str| CronExpr::parse(t).unwrap().croner();
        assert!(Bits::of(&cron("0 0 L * *")).is_none());
        assert!(Bits::of(&cron("0 0 * * 5#2")).is_none());
        assert!(Bits::of(&cron("0 0 15W * *")).is_none());
        let b = Bits::of(&cron("*/20 9-17 * JAN-MAR MON-FRI")).unwrap();
        assert!(!b.every_hour());
        assert_eq!(
            b.next_after(naive("2026-03-31T17:40:00")),
            Some(naive("2027-01-01T09:00:00"))
        );
        assert_eq!(
            Bits::of(&cron("0 0 30 2 *"))
                .unwrap()
                .next_after(naive("2026-01-01T00:00:00")),
            None
        );
        assert!(Bits::of(&cron("* * * * * *")).unwrap().every_hour());
    }

    fn field(max: u32, lo: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (1..=max / 2).prop_map(|s| format!("*/{s}")),
            (lo..=max).prop_map(|v| v.to_string()),
            (lo..=max, lo..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (lo..=max, lo..=max, 1u32..5).prop_map(|(a, b, s)| format!(
                "{}-{}/{s}",
                a.min(b),
                a.max(b)
            )),
            (lo..=max, lo..=max).prop_map(|(a, b)| format!("{a},{b}")),
        ]
    }

    fn pattern() -> impl Strategy<Value = String> {
        (
            prop::option::of(field(59, 0)),
            field(59, 0),
            field(23, 0),
            field(31, 1),
            field(12, 1),
            field(7, 0),
        )
            .prop_map(|(s, mi, h, d, mo, w)| match s {
                Some(s) => format!("{s} {mi} {h} {d} {mo} {w}"),
                None => format!("{mi} {h} {d} {mo} {w}"),
            })
    }

    fn name_or_number(
        max: u32,
        lo: u32,
        names: &'static [&'static str],
    ) -> impl Strategy<Value = String> {
        prop_oneof![
            (lo..=max).prop_map(|v| v.to_string()),
            (0..names.len().max(1)).prop_map(move |i| names
                .get(i)
                .map_or_else(|| lo.to_string(), |n| n.to_lowercase())),
        ]
    }

    /// Fields croner may or may not take: odd steps, names, reversed ranges, empty parts.
    fn odd_field(
        max: u32,
        lo: u32,
        names: &'static [&'static str],
    ) -> impl Strategy<Value = String> {
        prop_oneof![
            field(max, lo),
            (0..=max + 2).prop_map(|s| format!("*/{s}")),
            (lo..=max + 1, 0..=max + 2).prop_map(|(a, s)| format!("{a}/{s}")),
            (
                name_or_number(max, lo, names),
                name_or_number(max, lo, names)
            )
                .prop_map(|(a, b)| format!("{a}-{b}")),
            name_or_number(max, lo, names),
            Just(",".to_string()),
            Just("?".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// What the fast reading takes, croner takes too, and reads the same.
        #[test]
        fn the_fast_reading_agrees_with_croner(
            s in prop::option::of(odd_field(59, 0, &[])),
            mi in odd_field(59, 0, &[]),
            h in odd_field(23, 0, &[]),
            d in odd_field(31, 1, &[]),
            mo in odd_field(12, 1, &MONTHS),
            w in odd_field(7, 0, &DAYS),
            and in any::<bool>(),
        ) {
            let p = match s {
                Some(s) => format!("{s} {mi} {h} {d} {mo} {w}"),
                None => format!("{mi} {h} {d} {mo} {w}"),
            };
            if let Some(fast) = Bits::parse(&p, and) {
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .year(croner::parser::Year::Disallowed)
                    .dom_and_dow(and)
                    .build()
                    .parse(&p);
                prop_assert!(cron.is_ok(), "{} was read fast but croner refuses it: {:?}", p, cron.err());
                prop_assert_eq!(Some(fast), Bits::of(&cron.unwrap()), "{}", p);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The bits answer exactly what croner answers, fire after fire.
        #[test]
        fn bits_agree_with_croner(p in pattern(), start in 0i64..4_000_000_000) {
            let expr = CronExpr::parse(&p).unwrap();
            let cron = expr.croner();
            let bits = Bits::of(&cron).unwrap();
            let mut t = chrono::DateTime::from_timestamp(start, 0).unwrap().naive_utc();
            for _ in 0..5 {
                let want = cron.find_next_occurrence(&t, false).ok();
                let got = bits.next_after(t);
                prop_assert_eq!(got, want, "{} after {}", p, t);
                let Some(next) = got else { break };
                prop_assert!(bits.matches(next));
                prop_assert_eq!(bits.matches(t), cron.is_time_matching(&t).unwrap_or(false));
                t = next;
            }
        }
    }
}
