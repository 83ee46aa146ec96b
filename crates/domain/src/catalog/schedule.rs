//! EventBridge Scheduler expressions: `cron(...)`, `rate(...)` and `at(...)`.
//!
//! Checked here so a bad schedule fails `baton catalog validate` rather than the
//! `CreateSchedule` call at deploy time. The grammar follows the Scheduler user
//! guide: six cron fields, `?` in exactly one of day-of-month and day-of-week,
//! `L`/`W`/`#` only where allowed, and rate units that agree with the value.

use chrono::NaiveDateTime;

/// `Ok` when `expression` is a valid EventBridge Scheduler expression; otherwise what was expected.
pub fn check_schedule(expression: &str) -> Result<(), String> {
    let expression = expression.trim();
    if let Some(inner) = call_argument(expression, "cron") {
        check_cron(inner)
    } else if let Some(inner) = call_argument(expression, "rate") {
        check_rate(inner)
    } else if let Some(inner) = call_argument(expression, "at") {
        check_at(inner)
    } else {
        Err("an EventBridge Scheduler expression: `cron(min hour day-of-month month day-of-week year)`, \
             `rate(N minutes|hours|days)` or `at(yyyy-mm-ddThh:mm:ss)`"
            .into())
    }
}

fn call_argument<'a>(expression: &'a str, function: &str) -> Option<&'a str> {
    expression.strip_prefix(function)?.strip_prefix('(')?.strip_suffix(')')
}

fn check_rate(inner: &str) -> Result<(), String> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err("rate(value unit), e.g. rate(5 minutes) or rate(1 day)".into());
    };
    let value: u64 = match value.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("rate: a positive whole number before the unit, not `{value}`")),
    };
    let singular = match unit {
        "minute" | "minutes" => "minute",
        "hour" | "hours" => "hour",
        "day" | "days" => "day",
        other => return Err(format!("rate: a unit of minute(s), hour(s) or day(s), not `{other}`")),
    };
    match (value, unit == singular) {
        (1, false) => Err(format!("rate: a value of 1 takes the singular unit `{singular}`")),
        (n, true) if n > 1 => Err(format!("rate: a value of {n} takes the plural unit `{singular}s`")),
        _ => Ok(()),
    }
}

fn check_at(inner: &str) -> Result<(), String> {
    // chrono's %Y also takes signs and more digits; the Scheduler wants exactly this shape.
    let shaped = inner.len() == 19 && inner.as_bytes()[10] == b'T';
    if shaped && NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S").is_ok() {
        Ok(())
    } else {
        Err(format!("at(yyyy-mm-ddThh:mm:ss) with a real date and time, not at({inner})"))
    }
}

struct CronField {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names accepted for `min..` in order (JAN.. or SUN..).
    names: &'static [&'static str],
    day: Option<Day>,
}

#[derive(Clone, Copy, PartialEq)]
enum Day {
    OfMonth,
    OfWeek,
}

const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const CRON_FIELDS: [CronField; 6] = [
    CronField { name: "minutes", min: 0, max: 59, names: &[], day: None },
    CronField { name: "hours", min: 0, max: 23, names: &[], day: None },
    CronField { name: "day-of-month", min: 1, max: 31, names: &[], day: Some(Day::OfMonth) },
    CronField { name: "month", min: 1, max: 12, names: MONTHS, day: None },
    CronField { name: "day-of-week", min: 1, max: 7, names: WEEKDAYS, day: Some(Day::OfWeek) },
    CronField { name: "year", min: 1970, max: 2199, names: &[], day: None },
];

fn check_cron(inner: &str) -> Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != CRON_FIELDS.len() {
        return Err(format!("cron with 6 fields (minutes hours day-of-month month day-of-week year), found {}", fields.len()));
    }
    for (text, field) in fields.iter().zip(&CRON_FIELDS) {
        check_cron_field(text, field).map_err(|why| format!("cron {}: {why}", field.name))?;
    }
    match (fields[2] == "?", fields[4] == "?") {
        (true, false) | (false, true) => Ok(()),
        (true, true) => Err("cron: `?` in only one of day-of-month and day-of-week".into()),
        (false, false) => Err("cron: `?` in day-of-month or day-of-week (one of them must be `?`)".into()),
    }
}

fn check_cron_field(text: &str, field: &CronField) -> Result<(), String> {
    if text == "?" {
        return if field.day.is_some() { Ok(()) } else { Err("`?` is only allowed in the day fields".into()) };
    }
    let items: Vec<&str> = text.split(',').collect();
    for item in &items {
        if item.contains('#') && items.len() > 1 {
            return Err(format!("`{text}`: a `#` expression stands alone, not in a list"));
        }
        check_cron_item(item, field)?;
    }
    Ok(())
}

fn check_cron_item(item: &str, field: &CronField) -> Result<(), String> {
    match field.day {
        Some(Day::OfMonth) if item == "L" => return Ok(()),
        Some(Day::OfMonth) if item.ends_with('W') => return check_value(&item[..item.len() - 1], field),
        Some(Day::OfWeek) if item == "L" => return Ok(()),
        Some(Day::OfWeek) if item.ends_with('L') => return check_value(&item[..item.len() - 1], field),
        Some(Day::OfWeek) if item.contains('#') => {
            let (day, nth) = item.split_once('#').expect("contains #");
            check_value(day, field)?;
            return match nth.parse::<u32>() {
                Ok(1..=5) => Ok(()),
                _ => Err(format!("`{item}`: the week after `#` is 1-5")),
            };
        }
        _ => {}
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (item, None),
    };
    if let Some(step) = step {
        if field.day == Some(Day::OfWeek) {
            return Err(format!("`{item}`: `/` is not allowed in day-of-week"));
        }
        match step.parse::<u32>() {
            Ok(n) if n >= 1 && n <= field.max => {}
            _ => return Err(format!("`{item}`: a step between 1 and {} after `/`", field.max)),
        }
    }
    if base == "*" {
        return Ok(());
    }
    match base.split_once('-') {
        Some((from, to)) => {
            check_value(from, field)?;
            check_value(to, field)
        }
        None => check_value(base, field),
    }
}

fn check_value(text: &str, field: &CronField) -> Result<(), String> {
    if let Ok(n) = text.parse::<u32>() {
        if (field.min..=field.max).contains(&n) {
            return Ok(());
        }
    } else if field.names.iter().any(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(());
    }
    Err(not_a_value(text, field.min, field.max, field.names))
}

/// Why `text` is no value of a cron field from `min` to `max` that also takes `names`.
pub(crate) fn not_a_value(text: &str, min: u32, max: u32, names: &[&str]) -> String {
    let names = match names {
        [] => String::new(),
        names => format!(" or {}-{}", names[0], names[names.len() - 1]),
    };
    format!("`{text}` is not a value in {min}-{max}{names}")
}

#[cfg(test)]
mod tests {
    use super::check_schedule;

    #[test]
    fn accepts_documented_expressions() {
        for ok in [
            "cron(0 10 * * ? *)",
            "cron(15 12 * * ? *)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(*/5 8-17 ? * mon-fri *)",
            "cron(0 9 ? * 3#2 *)",
            "cron(0 9 ? * 6L 2030)",
            "cron(0 9 L * ? *)",
            "cron(0 9 15W JAN,JUL ? 1970-2199)",
            "rate(1 minute)",
            "rate(5 minutes)",
            "rate(1 hour)",
            "rate(12 hours)",
            "rate(1 day)",
            "rate(7 days)",
            "at(2030-02-28T23:59:00)",
        ] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_the_rule_broken() {
        let cases = [
            ("0 10 * * ?", "an EventBridge Scheduler expression"),
            ("cron(0 10 * * ?)", "6 fields"),
            ("cron(0 10 * * * *)", "one of them must be `?`"),
            ("cron(0 10 ? * ? *)", "only one of day-of-month and day-of-week"),
            ("cron(60 10 * * ? *)", "cron minutes: `60` is not a value in 0-59"),
            ("cron(0 24 * * ? *)", "cron hours: `24`"),
            ("cron(0 10 * 13 ? *)", "1-12 or JAN-DEC"),
            ("cron(0 10 ? * 8 *)", "1-7 or SUN-SAT"),
            ("cron(0 10 ? * 3#6 *)", "the week after `#` is 1-5"),
            ("cron(0 10 ? * 3#1,6#3 *)", "stands alone"),
            ("cron(0 10 * * ? 1969)", "1970-2199"),
            ("cron(? 10 * * ? *)", "only allowed in the day fields"),
            ("cron(0/0 10 * * ? *)", "a step between 1 and 59"),
            ("cron(0 10 * * ? *2)", "cron year"),
            ("rate(1 minutes)", "singular unit `minute`"),
            ("rate(5 minute)", "plural unit `minutes`"),
            ("rate(0 minutes)", "positive whole number"),
            ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
            ("rate(5)", "rate(value unit)"),
            ("at(2030-02-30T10:00:00)", "real date and time"),
            ("at(2030-02-28 10:00:00)", "yyyy-mm-ddThh:mm:ss"),
        ];
        for (expression, expected) in cases {
            let err = check_schedule(expression).expect_err(expression);
            assert!(err.contains(expected), "{expression}: {err}");
        }
    }
}
