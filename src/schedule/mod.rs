//! When a job fires: a cron expression read in the job's own timezone, with a daylight-saving
//! policy, turned into exact UTC instants. Pure: no clock, no I/O; the next fire is always
//! computed from the previous *scheduled* instant, so schedules never drift.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

mod bits;
mod describe;
mod fields;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

/// Why a cron expression was refused: the field, the value and what the field allows.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CronSyntax(String);

/// A parsed cron expression: 5 POSIX fields, or 6 with leading seconds, or an `@nickname`.
#[derive(Clone, Debug)]
pub struct CronExpr {
    text: Box<str>,
    matcher: Matcher,
    fields: u8,
}

/// What answers "when next": bitsets for plain patterns; croner itself (shared, since it keeps
/// a 5,000-entry year table) for `L`, `W` and `#`.
#[derive(Clone, Debug)]
enum Matcher {
    Bits(bits::Bits),
    Croner(Arc<Cron>),
}

impl CronExpr {
    /// Parses `text` with Vixie semantics for day-of-month and day-of-week: when both are
    /// restricted a day matches either; when either starts with `*` (`*`, `*/2`) both must match.
    pub fn parse(text: &str) -> Result<CronExpr, CronSyntax> {
        let trimmed = text.trim();
        let parts: Vec<&str> = trimmed.split_whitespace().collect();
        let fields = if trimmed.starts_with('@') {
            5
        } else {
            parts.len()
        };
        if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(CronSyntax(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, found {fields}"
            )));
        }
        let matcher = if let Some(b) = bits::Bits::parse(trimmed, dom_and_dow(trimmed)) {
            Matcher::Bits(b)
        } else {
            let cron = croner_parse(trimmed)
                .map_err(|e| CronSyntax(fields::explain(trimmed, &e.to_string())))?;
            match bits::Bits::of(&cron) {
                Some(b) => Matcher::Bits(b),
                None => Matcher::Croner(Arc::new(cron)),
            }
        };
        Ok(CronExpr {
            text: trimmed.into(),
            matcher,
            fields: fields as u8,
        })
    }

    /// croner's reading of the expression (parsed again: only kept for `L`, `W` and `#`).
    pub fn croner(&self) -> Cron {
        match &self.matcher {
            Matcher::Croner(c) => (**c).clone(),
            Matcher::Bits(_) => croner_parse(&self.text).expect("parsed before"),
        }
    }

    /// The expression as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.fields == 6
    }

    /// Whether the expression is plain POSIX cron, as Captain Data's own scheduler takes it: five
    /// fields of numbers, `*`, `,`, `-` and `/`, day of week 0 to 6; no seconds, macros, names,
    /// `L`, `W`, `#` or `?`. The error says what is not.
    pub fn plain_posix(&self) -> Result<(), String> {
        let text = self.text.trim();
        if text.starts_with('@') {
            return Err(format!("{text:?} is a macro; write its five fields"));
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("{} fields; write exactly five", fields.len()));
        }
        let names = ["minute", "hour", "day of month", "month", "day of week"];
        for (field, name) in fields.iter().zip(names) {
            if let Some(c) = field
                .chars()
                .find(|c| !(c.is_ascii_digit() || "*,-/".contains(*c)))
            {
                return Err(format!("{name} {field:?} uses {c:?}"));
            }
        }
        for part in fields[4].split(',') {
            let range = part.split('/').next().unwrap_or("");
            for n in range.split('-').filter(|n| *n != "*") {
                if n.parse::<u32>().map_or(true, |n| n > 6) {
                    return Err(format!("day of week {n:?} is outside 0-6 (Sunday is 0)"));
                }
            }
        }
        Ok(())
    }

    /// How the expression was read, in English.
    pub fn describe(&self) -> String {
        match &self.matcher {
            Matcher::Bits(b) => {
                describe::describe(b, &describe::Days::of_bits(b), self.has_seconds())
            }
            Matcher::Croner(c) => {
                let b = bits::Bits::unmodified(c);
                let days = describe::Days::of_cron(c, b.day_rule());
                describe::describe(&b, &days, self.has_seconds())
            }
        }
    }

    /// True when the expression fires in every hour of the day. Such jobs follow real time across
    /// daylight-saving changes instead of applying the gap/fold policy (as cronie does).
    pub fn is_hourly_or_more(&self) -> bool {
        match &self.matcher {
            Matcher::Bits(b) => b.every_hour(),
            Matcher::Croner(c) => (0..24).all(|h| c.pattern.hour_match(h).unwrap_or(false)),
        }
    }

    /// The first local wall-clock time strictly after `t` that matches.
    fn next_naive(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        match &self.matcher {
            Matcher::Bits(b) => b.next_after(t),
            Matcher::Croner(c) => c.find_next_occurrence(&t, false).ok(),
        }
    }

    /// Whether a local wall-clock time matches.
    pub fn matches_naive(&self, t: NaiveDateTime) -> bool {
        match &self.matcher {
            Matcher::Bits(b) => b.matches(t),
            Matcher::Croner(c) => c.is_time_matching(&t).unwrap_or(false),
        }
    }
}

/// croner with Vixie semantics for day-of-month and day-of-week: when both are restricted a day
/// matches either; when either starts with `*` (`*`, `*/2`) both must match.
fn croner_parse(trimmed: &str) -> Result<Cron, CronError> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(dom_and_dow(trimmed))
        .build()
        .parse(trimmed)
}

/// Vixie: a day field that starts with `*` makes the day rule an AND.
fn dom_and_dow(trimmed: &str) -> bool {
    let parts: Vec<&str> = trimmed.split_whitespace().collect();
    let (dom, dow) = if parts.len() == 6 { (3, 5) } else { (2, 4) };
    let star = |i: usize| parts.get(i).is_some_and(|p| p.starts_with('*'));
    !trimmed.starts_with('@') && (star(dom) || star(dow))
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What to do with a local time that does not exist (spring forward).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Gap {
    /// Fire once, at the first instant after the gap (cronie).
    #[default]
    Shift,
    /// Do not fire.
    Skip,
}

/// What to do with a local time that happens twice (fall back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fold {
    /// Fire at the first occurrence (cronie).
    #[default]
    First,
    /// Fire at the second occurrence.
    Last,
    /// Fire at both.
    Both,
}

/// Marks a fire time that daylight saving touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dst {
    /// The local time did not exist; this is the first instant after the gap.
    Gap,
    /// The local time happened twice; this is one of its occurrences.
    Fold,
}

impl Dst {
    /// The name used in `next --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dst::Gap => "gap",
            Dst::Fold => "fold",
        }
    }
}

/// One nominal fire time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fire {
    /// The instant, in UTC.
    pub at: DateTime<Utc>,
    /// The same instant in the job's zone.
    pub local: DateTime<Tz>,
    /// Whether daylight saving shaped it.
    pub dst: Option<Dst>,
}

/// A job's schedule: expression, zone, DST policy and jitter.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub cron: CronExpr,
    pub tz: Tz,
    pub gap: Gap,
    pub fold: Fold,
    /// The stable per-job delay added to each nominal instant to spread load.
    pub jitter_offset: Duration,
}

/// No real zone moves its offset by this much at once, nor changes it twice within it: local
/// candidates this far around an instant cover every way DST can reorder them.
const DST_REACH: chrono::Duration = chrono::Duration::hours(3);
/// Bounds the candidate scan near a transition (a per-second job scans 6 hours of seconds).
const MAX_CANDIDATES: usize = 100_000;

impl Schedule {
    /// A schedule whose jitter offset is derived from `name`, so it is the same on every start.
    pub fn new(
        name: &str,
        cron: CronExpr,
        tz: Tz,
        gap: Gap,
        fold: Fold,
        jitter: Duration,
    ) -> Schedule {
        Schedule {
            cron,
            tz,
            gap,
            fold,
            jitter_offset: jitter_offset(name, jitter),
        }
    }

    /// The first nominal fire strictly after `t`, or `None` if the expression never matches again.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<Fire> {
        if self.tz == Tz::UTC {
            // No daylight saving to weigh: the wall clock is the instant.
            let at = self.cron.next_naive(t.naive_utc())?.and_utc();
            return Some(Fire {
                at,
                local: at.with_timezone(&Tz::UTC),
                dst: None,
            });
        }
        let quiet_at_t = self.quiet(t);
        let mut n = self.local(t);
        if !quiet_at_t {
            n -= DST_REACH;
        }
        let mut best: Option<(Fire, NaiveDateTime)> = None;
        for _ in 0..MAX_CANDIDATES {
            n = self.cron.next_naive(n)?;
            if let Some((b, bn)) = &best
                && (self.quiet(b.at) || n > *bn + DST_REACH)
            {
                break;
            }
            for fire in self.resolve(n).into_iter().flatten() {
                if fire.at > t && best.as_ref().is_none_or(|(b, _)| fire.at < b.at) {
                    best = Some((fire, n));
                }
            }
        }
        best.map(|(f, _)| f)
    }

    /// The next `count` fires after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, count: usize) -> Vec<Fire> {
        let mut out = Vec::with_capacity(count);
        let mut at = t;
        while out.len() < count {
            let Some(f) = self.next_after(at) else { break };
            at = f.at;
            out.push(f);
        }
        out
    }

    /// The shortest time between two fires, over the fires of a sample year (from 2026-01-01):
    /// what a jitter must stay under. `None` for an expression that fires once or never.
    pub fn shortest_gap(&self) -> Option<Duration> {
        let start = DateTime::from_timestamp(1_767_225_600, 0)?;
        let fires = self.upcoming(start, 64);
        fires
            .windows(2)
            .filter_map(|w| (w[1].at - w[0].at).to_std().ok())
            .min()
    }

    /// The instant a nominal tick is actually fired (nominal plus jitter).
    pub fn fire_instant(&self, nominal: DateTime<Utc>) -> DateTime<Utc> {
        nominal + chrono::Duration::from_std(self.jitter_offset).unwrap_or_default()
    }

    /// The instants a local wall-clock time stands for, under this schedule's DST policy.
    fn resolve(&self, n: NaiveDateTime) -> [Option<Fire>; 2] {
        let real_time = self.cron.is_hourly_or_more();
        let fire = |d: DateTime<Tz>, dst| {
            Some(Fire {
                at: d.with_timezone(&Utc),
                local: d,
                dst,
            })
        };
        match self.tz.from_local_datetime(&n) {
            LocalResult::Single(d) => [fire(d, None), None],
            LocalResult::Ambiguous(a, b) => {
                let fold = if real_time { Fold::Both } else { self.fold };
                match fold {
                    Fold::First => [fire(a, Some(Dst::Fold)), None],
                    Fold::Last => [fire(b, Some(Dst::Fold)), None],
                    Fold::Both => [fire(a, Some(Dst::Fold)), fire(b, Some(Dst::Fold))],
                }
            }
            LocalResult::None => {
                if real_time || self.gap == Gap::Skip {
                    [None, None]
                } else {
                    let end = self.gap_end(n);
                    [fire(end.with_timezone(&self.tz), Some(Dst::Gap)), None]
                }
            }
        }
    }

    /// The first instant whose local time is at or after `n` (for `n` inside a gap: the instant
    /// the clocks jumped).
    fn gap_end(&self, n: NaiveDateTime) -> DateTime<Utc> {
        let day = 86_400;
        let mut lo = n.and_utc().timestamp() - day;
        let mut hi = n.and_utc().timestamp() + day;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.local(DateTime::from_timestamp(mid, 0).expect("in range")) >= n {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0).expect("in range")
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }

    fn offset_secs(&self, t: DateTime<Utc>) -> i32 {
        self.tz
            .offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    }

    /// True when the zone's offset does not change within [`DST_REACH`] of `t`.
    fn quiet(&self, t: DateTime<Utc>) -> bool {
        let o = self.offset_secs(t);
        o == self.offset_secs(t - DST_REACH) && o == self.offset_secs(t + DST_REACH)
    }
}

/// A stable spread in `[0, jitter)`: FNV-1a of the job name, the same on every machine and start.
pub fn jitter_offset(name: &str, jitter: Duration) -> Duration {
    let ms = jitter.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(crate::fnv::fnv64(name.as_bytes()) % ms)
}
