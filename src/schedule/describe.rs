//! How a cron expression was read, in English, from its bits: `check` and `next` print it for
//! every job. croner can describe a pattern too, but only from its own parse (a 5,000-entry
//! year table built and then scanned): for 10,000 jobs that was two thirds of `check`. Patterns
//! with `L`, `W` or `#` are still described by croner.

use super::bits::Bits;

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
        _ => format!("{unit}s {}", list(&values, name)),
    }
}

/// `a`, `a and b`, `a, b, and c`.
fn list(values: &[u32], name: &dyn Fn(u32) -> String) -> String {
    let names: Vec<String> = values.iter().map(|v| name(*v)).collect();
    match names.as_slice() {
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
        [] => String::new(),
    }
}

/// The English reading of `b`; `seconds` when the expression has a seconds field.
pub fn describe(b: &Bits, seconds: bool) -> String {
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
    let every_day_of_month = b.dom == 0xffff_fffe;
    let every_weekday = b.dow == 0x7f;
    let dom = || {
        format!(
            "on {} of the month",
            field(u64::from(b.dom), 1, 31, "day", &num)
        )
    };
    let dow = || {
        let names = |v: u32| DAYS[v as usize].to_string();
        let days = field(u64::from(b.dow), 0, 6, "day", &names);
        format!(
            "on {}",
            days.trim_start_matches("days ").trim_start_matches("day ")
        )
    };
    match b.day_rule() {
        super::bits::DayRule::DowOnly if !every_weekday => parts.push(dow()),
        super::bits::DayRule::DomOnly if !every_day_of_month => parts.push(dom()),
        super::bits::DayRule::Either => parts.push(format!("{} or {}", dom(), dow())),
        super::bits::DayRule::Both => parts.push(format!("{} if it is {}", dom(), &dow()[3..])),
        _ => {}
    }
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
            "At 00:00, on every 2 days of the month if it is Sunday, only in January through March."
        );
        assert_eq!(
            read("15 30 4 10 * *"),
            "At 04:30:15, on day 10 of the month."
        );
        // `L`, `W` and `#` are read by croner, which describes them itself.
        assert!(read("0 0 L * *").contains("last day"));
    }
}
