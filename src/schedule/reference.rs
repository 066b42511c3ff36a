//! An independent, deliberately naive cron matcher used only by tests to check croner and the
//! schedule: plain 5-field POSIX (numbers, names, ranges, steps, lists) and the Vixie day rule.

use chrono::{Datelike, NaiveDateTime, Timelike};

pub struct RefCron {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    dow: Vec<bool>,
    dom_star: bool,
    dow_star: bool,
}

fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Vec<bool> {
    let mut set = vec![false; hi as usize + 1];
    let value = |s: &str| -> u32 {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map_or_else(|| s.parse().unwrap(), |i| i as u32 + lo)
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().unwrap()),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a), value(b))
        } else if step > 1 {
            (value(range), hi)
        } else {
            (value(range), value(range))
        };
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            v += step;
        }
    }
    set
}

impl RefCron {
    pub fn parse(expr: &str) -> RefCron {
        let f: Vec<&str> = expr.split_whitespace().collect();
        assert_eq!(f.len(), 5, "reference takes 5 fields");
        let months = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        let days = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let mut dow = field(f[4], 0, 7, &days);
        if dow[7] {
            dow[0] = true;
        }
        RefCron {
            minute: field(f[0], 0, 59, &[]),
            hour: field(f[1], 0, 23, &[]),
            dom: field(f[2], 1, 31, &[]),
            month: field(f[3], 1, 12, &months),
            dow,
            dom_star: f[2].starts_with('*'),
            dow_star: f[4].starts_with('*'),
        }
    }

    pub fn matches(&self, t: NaiveDateTime) -> bool {
        let dom = self.dom[t.day() as usize];
        let dow = self.dow[t.weekday().num_days_from_sunday() as usize];
        let day = if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        t.second() == 0
            && self.minute[t.minute() as usize]
            && self.hour[t.hour() as usize]
            && self.month[t.month() as usize]
            && day
    }

    /// Whether any minute of `day` can match (month and the day rule).
    fn day_matches(&self, day: chrono::NaiveDate) -> bool {
        let dom = self.dom[day.day() as usize];
        let dow = self.dow[day.weekday().num_days_from_sunday() as usize];
        let rule = if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        self.month[day.month() as usize] && rule
    }

    /// The first matching minute strictly after `t`, searching day by day for up to 400 years
    /// (the Gregorian calendar's whole cycle, so a rare day such as September 1st on a
    /// Thursday is always found).
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = t.with_second(0)?.with_nanosecond(0)? + chrono::Duration::minutes(1);
        let mut day = start.date();
        for _ in 0..146_097 {
            if self.day_matches(day) {
                for h in 0..24 {
                    for m in 0..60 {
                        let c = day.and_hms_opt(h, m, 0)?;
                        if c >= start && self.matches(c) {
                            return Some(c);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }
}
