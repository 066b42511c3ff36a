//! How a cron expression was read, in English, from its bits: `check` and `next` print it for
//! every job, and people trust that sentence more than the fields. croner can describe a pattern
//! too, but only from its own parse (a 5,000-entry year table built and then scanned: two thirds
//! of `check` at 10,000 jobs), and its words for `LW` said "the last day of the month". So every
//! sentence is written here: the time and months from bits, the days from [`Days`], which also
//! reads croner's `L`, `W` and `#` modifiers.

use croner::Cron;

use super::bits::{Bits, DayRule};
const MONTHS: [&str; 13] = [
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One field of `lo..=hi` as English: `every minute`, `minute 5`, `every 15 minutes`,
/// `minutes 0 through 29`, `minutes 5, 10, and 50`. `name` renders a value.
fn field(mask: u64, lo: u32, hi: u32, unit: &str, name: &dyn Fn(u32) -> String) -> String {
    let values: Vec<u32> = (lo..=hi).filter(|v| mask & (1 << v) != 0).collect();
    let (first, last) = (values[0], values[values.len() - 1]);
    if values.len() == (hi - lo + 1) as usize {
        return format!("every {unit}");
    }
    if values.len() == 1 {
        return format!("{unit} {}", name(first));
    }
    let step = values[1] - values[0];
    let regular = values.len() > 2 && values.windows(2).all(|w| w[1] - w[0] == step);
    match (regular, step) {
        (true, 1) => format!("{unit}s {} through {}", name(first), name(last)),
        (true, _) if first == lo && last + step > hi => format!("every {step} {unit}s"),
        (true, _) => format!(
            "every {step} {unit}s from {} through {}",
            name(first),
            name(last)
        ),
        _ => format!("{unit}s {}", list(&values, name, "and")),
    }
}

/// `a`, `a and b`, `a, b, and c` (`and` being `conjunction`).
fn list(values: &[u32], name: &dyn Fn(u32) -> String, conjunction: &str) -> String {
    let names: Vec<String> = values.iter().map(|v| name(*v)).collect();
    match names.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} {conjunction} {b}"),
        [rest @ .., last] => format!("{}, {conjunction} {last}", rest.join(", ")),
        [] => String::new(),
    }
}

/// What the two day fields allow, modifiers included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Days {
    rule: DayRule,
    /// Plain days of the month, bits 1-31.
    dom: u32,
    /// `L`.
    last_day: bool,
    /// `LW`.
    last_weekday: bool,
    /// `NW`: the weekday nearest day N, bits 1-31.
    nearest: u32,
    /// Plain weekdays, bits 0-6 (Sunday = 0).
    dow: u8,
    /// `nL`: the last such weekday of the month.
    last_of: u8,
    /// `n#k`: the k-th such weekday of the month, at index k - 1.
    nth: [u8; 5],
}

// croner's bits of a field value (its `component` module is private).
const ALL_BIT: u8 = 1;
const LAST_BIT: u8 = 1 << 6;
const CLOSEST_WEEKDAY_BIT: u8 = 1 << 7;

impl Days {
    /// The days of a pattern without modifiers.
    pub(super) fn of_bits(b: &Bits) -> Days {
        Days {
            rule: b.day_rule(),
            dom: b.dom,
            last_day: false,
            last_weekday: false,
            nearest: 0,
            dow: b.dow,
            last_of: 0,
            nth: [0; 5],
        }
    }

    /// The days of croner's reading, `L`, `W` and `#` included.
    pub(super) fn of_cron(cron: &Cron, rule: DayRule) -> Days {
        let (dom, dow) = (&cron.pattern.days, &cron.pattern.days_of_week);
        let days = |bit: u8| dom.get_set_values(bit).iter().fold(0u32, |m, v| m | 1 << v);
        // Sunday may be 0 or 7.
        let weekdays = |bit: u8| {
            dow.get_set_values(bit)
                .iter()
                .fold(0u8, |m, v| m | 1 << (v % 7))
        };
        let last = dom.is_feature_enabled(LAST_BIT);
        let closest = dom.is_feature_enabled(CLOSEST_WEEKDAY_BIT);
        Days {
            rule,
            dom: days(ALL_BIT),
            last_day: last && !closest,
            last_weekday: last && closest,
            nearest: days(CLOSEST_WEEKDAY_BIT),
            dow: weekdays(ALL_BIT),
            last_of: weekdays(LAST_BIT),
            nth: [1, 2, 3, 4, 5].map(|k| weekdays(1 << k)),
        }
    }

    /// What the day-of-month field names, one item each: `day 5 of the month`, `the last
    /// weekday of the month`.
    fn dom_items(&self) -> Vec<String> {
        let mut items = Vec::new();
        if self.dom != 0 {
            items.push(days_of_month(self.dom));
        }
        if self.last_weekday {
            items.push("the last weekday of the month".to_string());
        }
        if self.last_day {
            items.push("the last day of the month".to_string());
        }
        for day in (1..=31).filter(|d| self.nearest & (1 << d) != 0) {
            items.push(format!("the weekday nearest day {day} of the month"));
        }
        items
    }

    /// What the day-of-week field names: `Monday through Friday`, `the last Friday of the
    /// month`, `the second Tuesday of the month`; `or` joins a list where one day is meant.
    fn dow_items(&self, or: bool) -> Vec<String> {
        let mut items = Vec::new();
        if self.dow != 0 {
            items.push(weekdays(self.dow, or));
        }
        for (k, ordinal) in ["first", "second", "third", "fourth", "fifth"]
            .iter()
            .enumerate()
        {
            for day in (0..7).filter(|d| self.nth[k] & (1 << d) != 0) {
                items.push(format!("the {ordinal} {} of the month", DAYS[day]));
            }
        }
        for day in (0..7).filter(|d| self.last_of & (1 << d) != 0) {
            items.push(format!("the last {} of the month", DAYS[day]));
        }
        items
    }

    /// The days as a phrase (`on ...`), `None` for every day.
    fn phrase(&self) -> Option<String> {
        let dom = || format!("on {}", self.dom_items().join(" or "));
        let dow = |or| self.dow_items(or).join(" or ");
        let all_days = self.dom == 0xffff_fffe;
        let all_weekdays = self.dow == 0x7f;
        match self.rule {
            DayRule::DowOnly if !all_weekdays => Some(format!("on {}", dow(false))),
            DayRule::DomOnly if !all_days => Some(dom()),
            DayRule::Either => Some(format!("{} or on {}", dom(), dow(true))),
            DayRule::Both => Some(format!("{} if it is {}", dom(), dow(true))),
            _ => None,
        }
    }
}

/// Plain days of the month: `day 5`, `days 1 and 15`, `days 1 through 15`, `every 2nd day of
/// the month, from the 1st`, each ending in `of the month`.
fn days_of_month(mask: u32) -> String {
    let values: Vec<u32> = (1..=31).filter(|v| mask & (1 << v) != 0).collect();
    let (first, last) = (values[0], values[values.len() - 1]);
    let step = values.get(1).map_or(1, |second| second - first);
    let regular = values.len() > 2 && values.windows(2).all(|w| w[1] - w[0] == step);
    match (regular, step) {
        _ if values.len() == 31 => "every day of the month".to_string(),
        (true, 1) => format!("days {first} through {last} of the month"),
        (true, _) if last + step > 31 => format!(
            "every {} day of the month, from the {}",
            ordinal(step),
            ordinal(first)
        ),
        (true, _) => format!(
            "every {} day of the month, from the {} through the {}",
            ordinal(step),
            ordinal(first),
            ordinal(last)
        ),
        _ if values.len() == 1 => format!("day {first} of the month"),
        _ => format!(
            "days {} of the month",
            list(&values, &|v| v.to_string(), "and")
        ),
    }
}

/// Weekdays by name, Sunday first: `Monday`, `Monday through Friday`, `Monday and Friday` (or
/// `Monday or Friday`), `any day of the week`.
fn weekdays(mask: u8, or: bool) -> String {
    let values: Vec<u32> = (0..7).filter(|v| mask & (1 << v) != 0).collect();
    let (first, last) = (values[0], values[values.len() - 1]);
    let name = |v: u32| DAYS[v as usize].to_string();
    if values.len() == 7 {
        "any day of the week".to_string()
    } else if values.len() > 2 && last - first + 1 == values.len() as u32 {
        format!("{} through {}", name(first), name(last))
    } else {
        list(&values, &name, if or { "or" } else { "and" })
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The English reading of the time and months of `b` and of `days`; `seconds` when the
/// expression has a seconds field.
pub(super) fn describe(b: &Bits, days: &Days, seconds: bool) -> String {
    let num = |v: u32| v.to_string();
    let single = u64::is_power_of_two;
    let mut parts = Vec::new();
    let clock = single(b.minutes) && single(u64::from(b.hours)) && single(b.seconds);
    if clock {
        let (h, m, s) = (
            b.hours.trailing_zeros(),
            b.minutes.trailing_zeros(),
            b.seconds.trailing_zeros(),
        );
        parts.push(if seconds && s != 0 {
            format!("At {h:02}:{m:02}:{s:02}")
        } else {
            format!("At {h:02}:{m:02}")
        });
    } else {
        let mut time = Vec::new();
        if seconds && b.seconds != 1 {
            time.push(field(b.seconds, 0, 59, "second", &num));
        }
        if !(seconds && b.minutes == (1 << 60) - 1 && b.hours == (1 << 24) - 1) {
            time.push(field(b.minutes, 0, 59, "minute", &num));
        }
        if b.hours != (1 << 24) - 1 {
            time.push(format!(
                "past {}",
                field(u64::from(b.hours), 0, 23, "hour", &num)
            ));
        }
        parts.push(format!("At {}", time.join(" ")));
    }
    parts.extend(days.phrase());
    if b.months != 0x1ffe {
        let names = |v: u32| MONTHS[v as usize].to_string();
        let months = field(u64::from(b.months), 1, 12, "month", &names);
        parts.push(format!(
            "only in {}",
            months
                .trim_start_matches("months ")
                .trim_start_matches("month ")
        ));
    }
    format!("{}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, NaiveDate, Weekday};
    use proptest::prelude::*;
    use regex::Regex;

    use crate::schedule::CronExpr;

    fn read(text: &str) -> String {
        CronExpr::parse(text).unwrap().describe()
    }

    #[test]
    fn plain_patterns_read_as_english() {
        assert_eq!(read("30 2 * * 1-5"), "At 02:30, on Monday through Friday.");
        assert_eq!(read("*/20 * * * * *"), "At every 20 seconds.");
        assert_eq!(read("45 * * * * *"), "At second 45.");
        assert_eq!(
            read("0 5 3 5 *"),
            "At 05:00, on day 3 of the month, only in May."
        );
        assert_eq!(
            read("*/15 9-17 * * *"),
            "At every 15 minutes past hours 9 through 17."
        );
        assert_eq!(read("0 7 * * 1"), "At 07:00, on Monday.");
        assert_eq!(read("* * * * *"), "At every minute.");
        assert_eq!(read("0 */5 * * * *"), "At every 5 minutes.");
        assert_eq!(
            read("0,30 8 1,15 * MON"),
            "At minutes 0 and 30 past hour 8, on days 1 and 15 of the month or on Monday."
        );
        assert_eq!(
            read("0 0 */2 JAN-MAR 0"),
            "At 00:00, on every 2nd day of the month, from the 1st if it is Sunday, only in January through March."
        );
        assert_eq!(
            read("15 30 4 10 * *"),
            "At 04:30:15, on day 10 of the month."
        );
        assert_eq!(
            read("0 9 * * 1,3,5"),
            "At 09:00, on Monday, Wednesday, and Friday."
        );
    }

    #[test]
    fn day_of_month_steps_say_which_day_they_start_from() {
        assert_eq!(
            read("0 9 */2 * *"),
            "At 09:00, on every 2nd day of the month, from the 1st."
        );
        assert_eq!(
            read("0 9 5-20/5 * *"),
            "At 09:00, on every 5th day of the month, from the 5th through the 20th."
        );
        assert_eq!(
            read("0 9 3-31/10 * *"),
            "At 09:00, on every 10th day of the month, from the 3rd."
        );
    }

    #[test]
    fn the_last_weekday_is_not_the_last_day() {
        assert_eq!(
            read("0 9 LW * *"),
            "At 09:00, on the last weekday of the month."
        );
        assert_eq!(read("0 9 L * *"), "At 09:00, on the last day of the month.");
    }

    #[test]
    fn each_modifier_reads_as_what_it_fires_on() {
        assert_eq!(
            read("0 9 15W * *"),
            "At 09:00, on the weekday nearest day 15 of the month."
        );
        assert_eq!(
            read("0 9 * * 5L"),
            "At 09:00, on the last Friday of the month."
        );
        assert_eq!(
            read("0 9 * * FRI#2"),
            "At 09:00, on the second Friday of the month."
        );
        assert_eq!(
            read("0 9 L * 1-5"),
            "At 09:00, on the last day of the month or on Monday through Friday."
        );
        assert_eq!(
            read("0 9 1,L * 1#1,5L"),
            "At 09:00, on day 1 of the month or the last day of the month or on the first Monday of the month or the last Friday of the month."
        );
        assert_eq!(
            read("0 9 LW JAN 1,5"),
            "At 09:00, on the last weekday of the month or on Monday or Friday, only in January."
        );
    }

    /// The names the sentence uses, Sunday first.
    const DAY_NAMES: [&str; 7] = super::DAYS;

    fn weekday(name: &str) -> u32 {
        DAY_NAMES.iter().position(|n| *n == name).unwrap() as u32
    }

    fn month_length(d: NaiveDate) -> u32 {
        let next = d.with_day(1).unwrap() + chrono::Months::new(1);
        (next - chrono::Duration::days(1)).day()
    }

    /// The weekday nearest day `n` of `d`'s month, as Quartz defines it: never across the
    /// month's ends.
    fn nearest_weekday(d: NaiveDate, n: u32) -> Option<NaiveDate> {
        let len = month_length(d);
        let day = d.with_day(n.min(len)).filter(|_| n <= len)?;
        Some(match day.weekday() {
            Weekday::Sat if n == 1 => day + chrono::Duration::days(2),
            Weekday::Sat => day - chrono::Duration::days(1),
            Weekday::Sun if n == len => day - chrono::Duration::days(2),
            Weekday::Sun => day + chrono::Duration::days(1),
            _ => day,
        })
    }

    /// One thing a day phrase names.
    #[derive(Debug)]
    enum Item {
        LastDay,
        LastWeekday,
        Nearest(u32),
        LastOf(u32),
        /// The k-th (0-based) such weekday.
        Nth(u32, u32),
        Step {
            step: u32,
            first: u32,
            last: u32,
        },
        Days(Vec<u32>),
        DayRange(u32, u32),
        Weekdays(u32, u32),
        AnyDay,
    }

    /// An independent reader of the day phrases the sentence uses: the items a clause names.
    fn read_clause(clause: &str) -> Vec<Item> {
        let ord = |s: &str| -> u32 { s.trim_end_matches(char::is_alphabetic).parse().unwrap() };
        let num = |s: &str| -> u32 { s.parse().unwrap() };
        let names = DAY_NAMES.join("|");
        let mut items = Vec::new();
        let mut rest = clause.to_string();
        let mut take = |pattern: &str, item: &dyn Fn(&regex::Captures) -> Item| {
            let re = Regex::new(pattern).unwrap();
            items.extend(re.captures_iter(&rest).map(|c| item(&c)));
            rest = re.replace_all(&rest, "#").into_owned();
        };
        take("the last day of the month", &|_| Item::LastDay);
        take("the last weekday of the month", &|_| Item::LastWeekday);
        take(r"the weekday nearest day (\d+) of the month", &|c| {
            Item::Nearest(num(&c[1]))
        });
        take(&format!("the last ({names}) of the month"), &|c| {
            Item::LastOf(weekday(&c[1]))
        });
        take(
            &format!("the (first|second|third|fourth|fifth) ({names}) of the month"),
            &|c| {
                let k = ["first", "second", "third", "fourth", "fifth"]
                    .iter()
                    .position(|o| *o == &c[1])
                    .unwrap() as u32;
                Item::Nth(weekday(&c[2]), k)
            },
        );
        take(
            r"every (\d+\w\w) day of the month, from the (\d+\w\w)(?: through the (\d+\w\w))?",
            &|c| Item::Step {
                step: ord(&c[1]),
                first: ord(&c[2]),
                last: c.get(3).map_or(31, |m| ord(m.as_str())),
            },
        );
        take(r"every day of the month", &|_| Item::AnyDay);
        take(r"days (\d+) through (\d+) of the month", &|c| {
            Item::DayRange(num(&c[1]), num(&c[2]))
        });
        take(r"days? ([\d, and]+) of the month", &|c| {
            Item::Days(
                c[1].split(|ch: char| !ch.is_ascii_digit())
                    .filter(|n| !n.is_empty())
                    .map(num)
                    .collect(),
            )
        });
        take(&format!("({names}) through ({names})"), &|c| {
            Item::Weekdays(weekday(&c[1]), weekday(&c[2]))
        });
        take(&format!("({names})"), &|c| {
            Item::Weekdays(weekday(&c[1]), weekday(&c[1]))
        });
        take("any day of the week", &|_| Item::AnyDay);
        let left = rest
            .replace(['#', ','], "")
            .replace(" or ", "")
            .replace(" and ", "");
        assert!(
            left.trim().is_empty(),
            "unread words {left:?} in {clause:?}"
        );
        items
    }

    fn names(item: &Item, d: NaiveDate) -> bool {
        let (day, dow, len) = (d.day(), d.weekday().num_days_from_sunday(), month_length(d));
        let weekend = |x: NaiveDate| matches!(x.weekday(), Weekday::Sat | Weekday::Sun);
        match item {
            Item::LastDay => day == len,
            Item::LastWeekday => {
                !weekend(d) && (day + 1..=len).all(|x| weekend(d.with_day(x).unwrap()))
            }
            Item::Nearest(n) => nearest_weekday(d, *n) == Some(d),
            Item::LastOf(w) => *w == dow && day + 7 > len,
            Item::Nth(w, k) => *w == dow && (day - 1) / 7 == *k,
            Item::Step { step, first, last } => {
                day >= *first && day <= *last && (day - first) % step == 0
            }
            Item::Days(days) => days.contains(&day),
            Item::DayRange(a, b) => (*a..=*b).contains(&day),
            Item::Weekdays(a, b) => (*a..=*b).contains(&dow),
            Item::AnyDay => true,
        }
    }

    /// The whole day phrase (after `At 09:00`) as a rule: clauses of items, with how they
    /// combine (`or on`: any clause; `if it is`: both).
    fn read_phrase(phrase: &str) -> (Vec<Vec<Item>>, bool) {
        let phrase = phrase.trim_start_matches(", ");
        if phrase.is_empty() {
            return (vec![vec![Item::AnyDay]], false);
        }
        let phrase = phrase.strip_prefix("on ").expect(phrase);
        if let Some((dom, dow)) = phrase.split_once(" if it is ") {
            return (vec![read_clause(dom), read_clause(dow)], true);
        }
        (phrase.split(" or on ").map(read_clause).collect(), false)
    }

    fn phrase_names(rule: &(Vec<Vec<Item>>, bool), d: NaiveDate) -> bool {
        let clause = |items: &Vec<Item>| items.iter().any(|i| names(i, d));
        if rule.1 {
            rule.0.iter().all(clause)
        } else {
            rule.0.iter().any(clause)
        }
    }

    fn dom_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            Just("L".to_string()),
            Just("LW".to_string()),
            (1u32..=28).prop_map(|n| format!("{n}W")),
            (1u32..=31).prop_map(|n| n.to_string()),
            (1u32..=31, 1u32..=31).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (2u32..=10).prop_map(|s| format!("*/{s}")),
            (1u32..=15, 16u32..=31, 2u32..=6).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
            (1u32..=15, 16u32..=31).prop_map(|(a, b)| format!("{a},{b}")),
            (1u32..=31).prop_map(|n| format!("{n},L")),
        ]
    }

    fn dow_field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_string()),
            (0u32..=6).prop_map(|n| format!("{n}L")),
            (0u32..=7, 1u32..=5).prop_map(|(n, k)| format!("{n}#{k}")),
            (0u32..=7).prop_map(|n| n.to_string()),
            (0u32..=6, 0u32..=6).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0u32..=6, 0u32..=6).prop_map(|(a, b)| format!("{a},{b}")),
            (2u32..=3).prop_map(|s| format!("*/{s}")),
            (1u32..=5, 0u32..=6).prop_map(|(k, n)| format!("{n}#{k},{n}L")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// For every day form (`L`, `LW`, `NW`, `nL`, `n#k`, steps, ranges, lists) the sentence,
        /// read back by an independent reader, names exactly the days the schedule fires on.
        #[test]
        fn the_sentence_names_the_days_it_fires_on(dom in dom_field(), dow in dow_field()) {
            let text = format!("0 9 {dom} * {dow}");
            let expr = CronExpr::parse(&text).unwrap();
            let sentence = expr.describe();
            let phrase = sentence.strip_prefix("At 09:00").unwrap().strip_suffix('.').unwrap();
            let rule = read_phrase(phrase);
            for month in 1..=12 {
                let first = NaiveDate::from_ymd_opt(2026, month, 1).unwrap();
                for d in first.iter_days().take_while(|d| d.month() == month) {
                    let fires = expr.matches_naive(d.and_hms_opt(9, 0, 0).unwrap());
                    prop_assert_eq!(
                        fires,
                        phrase_names(&rule, d),
                        "{:?} reads {:?} but on {} fires: {}", text, sentence, d, fires
                    );
                }
            }
        }
    }
}
