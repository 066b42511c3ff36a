//! Why a cron expression was refused, in the user's terms: the field, the value, and what the
//! field allows (`day of week: 8 is outside 0-7`). croner's own errors ("Range out of bounds")
//! name neither, so a refused expression is read again here, field by field; only on that path.

/// One field: its name in messages, its bounds, the names it takes, and its modifiers.
struct Field {
    name: &'static str,
    lo: u32,
    hi: u32,
    /// Names for `lo`, `lo + 1`, ... (`JAN`, `SUN`).
    names: &'static [&'static str],
    /// What one value is called: "a day of the week".
    what: &'static str,
}

const SECOND: Field = Field {
    name: "second",
    lo: 0,
    hi: 59,
    names: &[],
    what: "a second",
};
const MINUTE: Field = Field {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
    what: "a minute",
};
const HOUR: Field = Field {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
    what: "an hour",
};
const DAY_OF_MONTH: Field = Field {
    name: "day of month",
    lo: 1,
    hi: 31,
    names: &[],
    what: "a day of the month",
};
const MONTH: Field = Field {
    name: "month",
    lo: 1,
    hi: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    what: "a month",
};
const DAY_OF_WEEK: Field = Field {
    name: "day of week",
    lo: 0,
    hi: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    what: "a day of the week",
};

/// What is wrong with `text`, which croner refused with `croner`: the first field that breaks
/// its rules, named; croner's words when no field does.
pub(super) fn explain(text: &str, croner: &str) -> String {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let fields: &[Field] = if parts.len() == 6 {
        &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK]
    } else {
        &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK]
    };
    for (part, field) in parts.iter().zip(fields) {
        if let Err(why) = field.check(part) {
            return format!("{}: {why}", field.name);
        }
    }
    croner
        .trim_start_matches("Component error: ")
        .trim_start_matches("Invalid pattern: ")
        .to_string()
}

impl Field {
    fn range(&self) -> String {
        match (self.names.first(), self.names.last()) {
            (Some(a), Some(b)) => format!("{}-{} or {a}-{b}", self.lo, self.hi),
            _ => format!("{}-{}", self.lo, self.hi),
        }
    }

    fn check(&self, text: &str) -> Result<(), String> {
        for part in text.split(',') {
            if part.is_empty() {
                return Err(format!("{text:?} has an empty item"));
            }
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (part, None),
            };
            if let Some(step) = step {
                let most = self.hi - self.lo + 1;
                if !step.parse::<u32>().is_ok_and(|s| (1..=most).contains(&s)) {
                    return Err(format!(
                        "the step {step:?} in {part:?} is not a number from 1 to {most}"
                    ));
                }
                if !range.contains('-') && range != "*" {
                    return Err(format!(
                        "{part:?} steps from a single value: write {range}-{}/{step} or */{step}",
                        self.hi
                    ));
                }
            }
            let range = self.modifier(range)?;
            if matches!(range, "*" | "?" | "") {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let (va, vb) = (self.value(a)?, self.value(b)?);
            if va > vb {
                return Err(format!("{part:?} runs backwards ({a} comes after {b})"));
            }
        }
        Ok(())
    }

    /// The value part of `part` once a day field's modifier (`L`, `LW`, `15W`, `5L`, `5#2`)
    /// is checked and taken off; `""` when nothing is left to check.
    fn modifier<'a>(&self, part: &'a str) -> Result<&'a str, String> {
        let upper = part.to_ascii_uppercase();
        if self.name == DAY_OF_MONTH.name {
            if upper == "L" || upper == "LW" {
                return Ok("");
            }
            if let Some(day) = upper.strip_suffix('W') {
                self.value(day)?;
                return Ok("");
            }
        }
        if self.name == DAY_OF_WEEK.name {
            if let Some((day, nth)) = part.split_once('#') {
                if !nth.parse::<u32>().is_ok_and(|n| (1..=5).contains(&n)) {
                    return Err(format!("in {part:?}, #{nth} is not a week from 1 to 5"));
                }
                return Ok(day);
            }
            if upper.len() > 1 && upper.ends_with('L') {
                return Ok(&part[..part.len() - 1]);
            }
        }
        Ok(part)
    }

    fn value(&self, s: &str) -> Result<u32, String> {
        if let Ok(n) = s.parse::<u32>() {
            return if (self.lo..=self.hi).contains(&n) {
                Ok(n)
            } else {
                Err(format!("{n} is outside {}-{}", self.lo, self.hi))
            };
        }
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| self.lo + i as u32)
            .ok_or_else(|| format!("{s:?} is not {} ({})", self.what, self.range()))
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::CronExpr;

    fn why(text: &str) -> String {
        CronExpr::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_refused_expression_names_the_field_the_value_and_the_range() {
        assert_eq!(why("0 8 * * 1-8"), "day of week: 8 is outside 0-7");
        assert_eq!(why("61 * * * *"), "minute: 61 is outside 0-59");
        assert_eq!(why("0 24 * * *"), "hour: 24 is outside 0-23");
        assert_eq!(why("0 0 32 * *"), "day of month: 32 is outside 1-31");
        assert_eq!(why("0 0 0 * *"), "day of month: 0 is outside 1-31");
        assert_eq!(why("0 0 1 13 *"), "month: 13 is outside 1-12");
        assert_eq!(why("60 0 0 * * *"), "second: 60 is outside 0-59");
        assert_eq!(
            why("0 0 * FOO *"),
            "month: \"FOO\" is not a month (1-12 or JAN-DEC)"
        );
        assert_eq!(
            why("0 0 * * FRI#6"),
            "day of week: in \"FRI#6\", #6 is not a week from 1 to 5"
        );
        assert_eq!(
            why("0 5-3 * * *"),
            "hour: \"5-3\" runs backwards (5 comes after 3)"
        );
        assert_eq!(
            why("*/0 * * * *"),
            "minute: the step \"0\" in \"*/0\" is not a number from 1 to 60"
        );
        assert_eq!(why("0 0 40W * *"), "day of month: 40 is outside 1-31");
        assert_eq!(why("0 L * * *"), "hour: \"L\" is not an hour (0-23)");
        assert!(why("0 0 * *").contains("expected 5 fields"));
    }
}
