//! The start of a recurring freeze window: a five-field cron expression (`minute hour
//! day-of-month month day-of-week`) read on the wall clock of the window's time zone.
//!
//! Our own matcher rather than a crate: the rules need only "which wall-clock minutes of this
//! date match", and the time zone (gaps, repeated hours) is handled once by the caller.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u32,
    weekdays: u32,
    /// Classic cron: when both day fields are restricted (neither starts with `*`), a date
    /// matches either of them; otherwise both must match.
    either_day: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's value (JAN is 1, SUN is 0).
    names_from: u32,
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[], names_from: 0 },
    Field { name: "hour", min: 0, max: 23, names: &[], names_from: 0 },
    Field { name: "day-of-month", min: 1, max: 31, names: &[], names_from: 0 },
    Field { name: "month", min: 1, max: 12, names: MONTHS, names_from: 1 },
    // 7 is Sunday too, as in every cron.
    Field { name: "day-of-week", min: 0, max: 7, names: WEEKDAYS, names_from: 0 },
];

impl Cron {
    /// Parses `minute hour day-of-month month day-of-week`; the error says what was expected.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != FIELDS.len() {
            return Err(format!(
                "a cron expression with 5 fields (minute hour day-of-month month day-of-week, e.g. `0 16 * * FRI`), found {} in `{text}`",
                fields.len()
            ));
        }
        let mut masks = [0u64; 5];
        for ((mask, text), field) in masks.iter_mut().zip(&fields).zip(&FIELDS) {
            *mask = parse_field(text, field).map_err(|why| format!("cron {}: {why}", field.name))?;
        }
        // Sunday written as 7 is Sunday.
        let weekdays = (masks[4] | (masks[4] >> 7)) & 0x7f;
        Ok(Cron {
            minutes: masks[0],
            hours: masks[1] as u32,
            days: masks[2] as u32,
            months: masks[3] as u32,
            weekdays: weekdays as u32,
            either_day: !fields[2].starts_with('*') && !fields[4].starts_with('*'),
        })
    }

    /// Whether the expression fires on some minute of `date`.
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        let month = self.months & (1 << date.month()) != 0;
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        month && if self.either_day { day || weekday } else { day && weekday }
    }

    /// The wall-clock times the expression fires on `date`, in order.
    pub fn times_on(&self, date: NaiveDate) -> impl Iterator<Item = NaiveDateTime> + '_ {
        let hours = if self.matches_date(date) { self.hours } else { 0 };
        (0..24u32).filter(move |hour| hours & (1 << hour) != 0).flat_map(move |hour| {
            (0..60u32)
                .filter(move |minute| self.minutes & (1 << minute) != 0)
                .map(move |minute| date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("hour < 24 and minute < 60")))
        })
    }
}

fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(step) if (1..=field.max).contains(&step) => (range, step),
                _ => return Err(format!("`{item}`: a step between 1 and {} after `/`", field.max)),
            },
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" => (field.min, field.max),
            _ => match range.split_once('-') {
                Some((from, to)) => (value(from, field)?, value(to, field)?),
                // `5/15` runs from 5 to the field's end.
                None if step > 1 => (value(range, field)?, field.max),
                None => {
                    let single = value(range, field)?;
                    (single, single)
                }
            },
        };
        if from > to {
            return Err(format!("`{item}`: a range from low to high"));
        }
        mask |= (from..=to).step_by(step as usize).fold(0u64, |mask, value| mask | (1 << value));
    }
    Ok(mask)
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>()
        && (field.min..=field.max).contains(&n)
    {
        return Ok(n);
    }
    if let Some(index) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(field.names_from + index as u32);
    }
    Err(crate::catalog::not_a_value(text, field.min, field.max, field.names))
}

#[cfg(test)]
mod tests {
    use super::Cron;
    use chrono::NaiveDate;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn times(expression: &str, on: NaiveDate) -> Vec<String> {
        Cron::parse(expression).unwrap().times_on(on).map(|t| t.format("%H:%M").to_string()).collect()
    }

    #[test]
    fn fires_at_the_minutes_each_expression_names() {
        // 2026-11-06 is a Friday, 2026-11-08 a Sunday.
        let friday = date(2026, 11, 6);
        let sunday = date(2026, 11, 8);
        let cases: &[(&str, NaiveDate, &[&str])] = &[
            ("0 16 * * FRI", friday, &["16:00"]),
            ("0 16 * * FRI", sunday, &[]),
            ("0 16 * * 5", friday, &["16:00"]),
            ("0 9 * * 0", sunday, &["09:00"]),
            ("0 9 * * 7", sunday, &["09:00"]),
            ("0 9 * * SUN", sunday, &["09:00"]),
            ("30 8,20 * * *", sunday, &["08:30", "20:30"]),
            ("*/20 10 * * *", friday, &["10:00", "10:20", "10:40"]),
            ("10/20 10 * * *", friday, &["10:10", "10:30", "10:50"]),
            ("0 22-23 * * mon-fri", friday, &["22:00", "23:00"]),
            ("0 0 24 DEC *", date(2026, 12, 24), &["00:00"]),
            ("0 0 24 12 *", date(2026, 11, 24), &[]),
            // Both day fields restricted: either one matches (the 6th, or any Sunday).
            ("0 0 6 * SUN", friday, &["00:00"]),
            ("0 0 6 * SUN", sunday, &["00:00"]),
            ("0 0 6 * SUN", date(2026, 11, 7), &[]),
            // Day-of-week `*`: the day of month alone decides.
            ("0 0 6 * *", sunday, &[]),
        ];
        for (expression, on, expected) in cases {
            assert_eq!(times(expression, *on), *expected, "{expression} on {on}");
        }
    }

    #[test]
    fn refuses_with_the_rule_broken() {
        let cases = [
            ("0 16 * *", "5 fields"),
            ("0 16 * * FRI *", "5 fields"),
            ("60 16 * * FRI", "cron minute: `60` is not a value in 0-59"),
            ("0 24 * * *", "cron hour: `24`"),
            ("0 0 0 * *", "cron day-of-month: `0` is not a value in 1-31"),
            ("0 0 * 13 *", "1-12 or JAN-DEC"),
            ("0 0 * * FRIDAY", "0-7 or SUN-SAT"),
            ("*/0 * * * *", "a step between 1 and 59"),
            ("0 20-8 * * *", "from low to high"),
            ("0 16 ? * FRI", "cron day-of-month: `?`"),
        ];
        for (expression, expected) in cases {
            let err = Cron::parse(expression).expect_err(expression);
            assert!(err.contains(expected), "{expression}: {err}");
        }
    }
}
