//! Freeze windows: when a wave may not start. A window is one-off (a start and an end) or
//! recurring (a cron start on the wall clock of an IANA time zone, and a duration); it applies
//! to the environments it names, or to all. These rules say which windows are in force at an
//! instant, which begin next, and the first instant at or after a given one outside every window.

mod cron;

pub use cron::Cron;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;

/// How many windows in a row [`first_open`] steps over before it calls the environment frozen.
pub const MAX_CHAINED_WINDOWS: usize = 1_000;
/// How far past the asked instant [`first_open`] looks for an opening.
pub const MAX_FROZEN_DAYS: i64 = 366;

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    pub reason: String,
    /// Empty: every environment.
    pub environments: Vec<String>,
    pub when: When,
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Once { start: DateTime<Utc>, end: DateTime<Utc> },
    Every { start: Cron, zone: Tz, duration: TimeDelta },
}

/// One stretch of time a window covers: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    pub window: String,
    pub reason: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl fmt::Display for Occurrence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "freeze window `{}` ({}) until {}", self.window, self.reason, self.end.to_rfc3339())
    }
}

/// No opening within [`MAX_FROZEN_DAYS`]: the windows chain into one another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrozenForever {
    pub environment: String,
    pub from: DateTime<Utc>,
    /// The windows still in force where the search stopped.
    pub windows: Vec<String>,
}

impl fmt::Display for FrozenForever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment `{}` is frozen for more than {MAX_FROZEN_DAYS} days from {}: freeze windows {} chain into one another",
            self.environment,
            self.from.to_rfc3339(),
            self.windows.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
        )
    }
}

impl std::error::Error for FrozenForever {}

impl Window {
    pub fn applies_to(&self, environment: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|name| name == environment)
    }

    /// The occurrences that overlap `[from, to)`, in order of start.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Occurrence> {
        let stretches = match &self.when {
            When::Once { start, end } => vec![(*start, *end)],
            When::Every { start, zone, duration } => {
                // A day either side covers any offset change between wall clock and UTC.
                let first = (from.with_timezone(zone).naive_local() - *duration).date() - Duration::days(1);
                let last = to.with_timezone(zone).naive_local().date() + Duration::days(1);
                first
                    .iter_days()
                    .take_while(|date| *date <= last)
                    .flat_map(|date| start.times_on(date).collect::<Vec<_>>())
                    .map(|local| (instant(*zone, local, Resolve::Earlier), instant(*zone, local + *duration, Resolve::Later)))
                    .collect()
            }
        };
        stretches
            .into_iter()
            .filter(|(start, end)| *start < to && *end > from && start < end)
            .map(|(start, end)| Occurrence { window: self.name.clone(), reason: self.reason.clone(), start, end })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Resolve {
    Earlier,
    Later,
}

/// The instant a wall-clock time names in `zone`. A recurring window's end is its start plus the
/// duration on the wall clock, not in elapsed time: "Friday 16:00 for 64h" means Monday 08:00 to
/// the people who declared it, whichever way the clocks changed over the weekend. Where the
/// wall-clock time does not exist (clocks skipped it) it moves past the gap by the gap's length;
/// where it happens twice (clocks went back) the window takes the reading that freezes longer:
/// the earlier for a start, the later for an end.
fn instant(zone: Tz, local: NaiveDateTime, ambiguous: Resolve) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => match ambiguous {
            Resolve::Earlier => first.min(second).with_timezone(&Utc),
            Resolve::Later => first.max(second).with_timezone(&Utc),
        },
        LocalResult::None => {
            // Read with the offset in force before the gap, the time lands after it.
            let before = zone.offset_from_utc_datetime(&(local - Duration::days(1)));
            let seconds = chrono::Offset::fix(&before).local_minus_utc();
            Utc.from_utc_datetime(&(local - TimeDelta::seconds(i64::from(seconds))))
        }
    }
}

/// The windows in force at `at` for `environment`, in the order declared.
pub fn in_force(windows: &[Window], environment: &str, at: DateTime<Utc>) -> Vec<Occurrence> {
    let just_after = at + TimeDelta::seconds(1);
    windows
        .iter()
        .filter(|window| window.applies_to(environment))
        .flat_map(|window| window.occurrences(at, just_after))
        .filter(|occurrence| occurrence.start <= at && at < occurrence.end)
        .collect()
}

/// The occurrences for `environment` that begin in `(from, until]`, by start.
pub fn upcoming(windows: &[Window], environment: &str, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Occurrence> {
    let mut next: Vec<Occurrence> = windows
        .iter()
        .filter(|window| window.applies_to(environment))
        .flat_map(|window| window.occurrences(from, until))
        .filter(|occurrence| occurrence.start > from && occurrence.start <= until)
        .collect();
    next.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.window.cmp(&b.window)));
    next
}

/// The first instant at or after `from` outside every window for `environment`: past the
/// windows in force, then past any that were in force at their end (overlapping or chained).
pub fn first_open(windows: &[Window], environment: &str, from: DateTime<Utc>) -> Result<DateTime<Utc>, FrozenForever> {
    let horizon = from + TimeDelta::days(MAX_FROZEN_DAYS);
    let mut at = from;
    for _ in 0..MAX_CHAINED_WINDOWS {
        let open = in_force(windows, environment, at);
        match open.iter().map(|occurrence| occurrence.end).max() {
            None => return Ok(at),
            Some(end) if end <= horizon => at = end,
            Some(_) => break,
        }
    }
    Err(FrozenForever {
        environment: environment.to_owned(),
        from,
        windows: in_force(windows, environment, at).into_iter().map(|occurrence| occurrence.window).collect(),
    })
}

/// The instant a definition's Wait holds a release to when `from` is frozen: [`first_open`] up
/// to the whole second, since the state entered after the Wait keeps milliseconds at most and
/// one a hair before the window's end would be held again.
pub fn wait_until(windows: &[Window], environment: &str, from: DateTime<Utc>) -> Result<DateTime<Utc>, FrozenForever> {
    let open = first_open(windows, environment, from)?;
    Ok(match open.timestamp_subsec_nanos() {
        0 => open,
        _ => DateTime::from_timestamp(open.timestamp() + 1, 0).unwrap_or(open),
    })
}

/// What the freeze windows say of a signal as it is admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No window in force, or the sender overrode them: the release goes on (its waves are still
    /// checked as each starts).
    Open,
    /// A schedule fired inside a window: nothing ships, the release is recorded as skipped.
    Skipped(Occurrence),
    /// The catalog says `on-freeze: refuse` and a window is in force.
    Refused(Occurrence),
}

/// Judges a signal against the windows in force at `now` (the first one, as declared, is named).
/// A release that waits (the default) is admitted: its first wave waits for the window's end.
pub fn admission(windows: &[Window], environment: &str, refuse: bool, scheduled: bool, overridden: bool, now: DateTime<Utc>) -> Admission {
    match in_force(windows, environment, now).into_iter().next() {
        Some(_) if overridden => Admission::Open,
        Some(window) if scheduled => Admission::Skipped(window),
        Some(window) if refuse => Admission::Refused(window),
        _ => Admission::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn every(name: &str, cron: &str, zone: &str, hours: i64) -> Window {
        Window {
            name: name.into(),
            reason: format!("{name} reason"),
            environments: vec![],
            when: When::Every { start: Cron::parse(cron).unwrap(), zone: zone.parse().unwrap(), duration: TimeDelta::hours(hours) },
        }
    }

    fn once(name: &str, start: &str, end: &str) -> Window {
        Window {
            name: name.into(),
            reason: format!("{name} reason"),
            environments: vec![],
            when: When::Once { start: utc(start), end: utc(end) },
        }
    }

    fn weekend() -> Window {
        every("weekend", "0 16 * * FRI", "Europe/Paris", 64)
    }

    #[test]
    fn a_recurring_window_ends_on_the_wall_clock_of_its_zone() {
        // (what, window, asked at, expected [start, end) in force, or none)
        type Case = (&'static str, Window, &'static str, Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            ("winter weekend", weekend(), "2026-12-05T12:00:00Z", Some(("2026-12-04T15:00:00Z", "2026-12-07T07:00:00Z"))),
            ("summer weekend", weekend(), "2026-07-11T12:00:00Z", Some(("2026-07-10T14:00:00Z", "2026-07-13T06:00:00Z"))),
            // Clocks go back on Sunday 2026-10-25: Friday 16:00 is UTC+2, Monday 08:00 UTC+1, so
            // the window lasts 65 hours of elapsed time and still ends at 08:00 local.
            ("clocks back inside", weekend(), "2026-10-24T12:00:00Z", Some(("2026-10-23T14:00:00Z", "2026-10-26T07:00:00Z"))),
            // Clocks go forward on Sunday 2026-03-29: 63 hours elapsed, Monday 08:00 local (UTC+2).
            ("clocks forward inside", weekend(), "2026-03-28T12:00:00Z", Some(("2026-03-27T15:00:00Z", "2026-03-30T06:00:00Z"))),
            ("start is inclusive", weekend(), "2026-12-04T15:00:00Z", Some(("2026-12-04T15:00:00Z", "2026-12-07T07:00:00Z"))),
            ("end is exclusive", weekend(), "2026-12-07T07:00:00Z", None),
            ("a minute before", weekend(), "2026-12-04T14:59:00Z", None),
            ("midweek", weekend(), "2026-12-09T12:00:00Z", None),
            // 02:30 on 2026-03-29 does not exist in Paris: the start moves past the gap to 03:30 (01:30Z).
            (
                "start in a gap",
                every("night", "30 2 29 MAR *", "Europe/Paris", 2),
                "2026-03-29T01:45:00Z",
                Some(("2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z")),
            ),
            // 02:30 on 2026-10-25 happens twice in Paris: the start takes the first (00:30Z).
            (
                "ambiguous start",
                every("night", "30 2 25 OCT *", "Europe/Paris", 3),
                "2026-10-25T00:45:00Z",
                Some(("2026-10-25T00:30:00Z", "2026-10-25T04:30:00Z")),
            ),
            // Ending at 02:30 on 2026-10-25 takes the second 02:30 (01:30Z).
            (
                "ambiguous end",
                every("evening", "30 23 24 OCT *", "Europe/Paris", 3),
                "2026-10-25T01:15:00Z",
                Some(("2026-10-24T21:30:00Z", "2026-10-25T01:30:00Z")),
            ),
            (
                "one-off",
                once("launch", "2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z"),
                "2026-12-25T00:00:00Z",
                Some(("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z")),
            ),
            ("after a one-off", once("launch", "2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z"), "2027-01-04T00:00:00Z", None),
        ];
        for (what, window, at, expected) in cases {
            let found: Vec<(DateTime<Utc>, DateTime<Utc>)> =
                in_force(std::slice::from_ref(&window), "production", utc(at)).into_iter().map(|o| (o.start, o.end)).collect();
            let expected: Vec<(DateTime<Utc>, DateTime<Utc>)> = expected.into_iter().map(|(s, e)| (utc(s), utc(e))).collect();
            assert_eq!(found, expected, "{what}");
        }
    }

    #[test]
    fn a_wait_lasts_to_the_whole_second_past_the_windows() {
        let launch = once("launch", "2026-12-20T00:00:00.250Z", "2026-12-21T00:00:00.250Z");
        // (asked at, expected wait end)
        let cases = [
            ("2026-12-20T12:00:00Z", "2026-12-21T00:00:01Z"),
            ("2026-12-19T12:00:00Z", "2026-12-19T12:00:00Z"),
            ("2026-12-21T00:00:00.250Z", "2026-12-21T00:00:01Z"),
        ];
        for (at, expected) in cases {
            assert_eq!(wait_until(std::slice::from_ref(&launch), "production", utc(at)), Ok(utc(expected)), "{at}");
        }
    }

    #[test]
    fn windows_apply_to_the_environments_they_name() {
        let mut window = weekend();
        window.environments = vec!["production".into()];
        let at = utc("2026-12-05T12:00:00Z");
        assert_eq!(in_force(std::slice::from_ref(&window), "production", at).len(), 1);
        assert!(in_force(std::slice::from_ref(&window), "staging", at).is_empty());
        assert_eq!(first_open(std::slice::from_ref(&window), "staging", at), Ok(at));
    }

    #[test]
    fn the_first_opening_steps_over_overlapping_and_chained_windows() {
        // (what, windows, from, first open)
        let cases: Vec<(&str, Vec<Window>, &str, &str)> = vec![
            ("open already", vec![weekend()], "2026-12-09T12:00:00Z", "2026-12-09T12:00:00Z"),
            ("one window", vec![weekend()], "2026-12-05T12:00:00Z", "2026-12-07T07:00:00Z"),
            (
                "overlapping: the later end wins",
                vec![weekend(), once("audit", "2026-12-06T00:00:00Z", "2026-12-08T10:00:00Z")],
                "2026-12-05T12:00:00Z",
                "2026-12-08T10:00:00Z",
            ),
            (
                "overlapping: a window inside another",
                vec![weekend(), once("short", "2026-12-05T00:00:00Z", "2026-12-05T18:00:00Z")],
                "2026-12-05T12:00:00Z",
                "2026-12-07T07:00:00Z",
            ),
            (
                "chained: one begins as the other ends",
                vec![
                    weekend(),
                    once("monday", "2026-12-07T07:00:00Z", "2026-12-07T12:00:00Z"),
                    once("lunch", "2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z"),
                ],
                "2026-12-05T12:00:00Z",
                "2026-12-07T13:00:00Z",
            ),
            (
                "a window that starts later is not stepped over",
                vec![weekend(), once("later", "2026-12-07T08:00:00Z", "2026-12-07T12:00:00Z")],
                "2026-12-05T12:00:00Z",
                "2026-12-07T07:00:00Z",
            ),
            // Nightly 22:00-06:00 Paris and a 06:00 daily hour chain into 07:00 local.
            (
                "recurring windows chained",
                vec![every("night", "0 22 * * *", "Europe/Paris", 8), every("morning", "0 6 * * *", "Europe/Paris", 1)],
                "2026-12-08T23:00:00Z",
                "2026-12-09T06:00:00Z",
            ),
        ];
        for (what, windows, from, open) in cases {
            assert_eq!(first_open(&windows, "production", utc(from)), Ok(utc(open)), "{what}");
        }
    }

    #[test]
    fn windows_that_never_open_are_an_error() {
        let always = every("always", "0 0 * * *", "UTC", 25);
        let err = first_open(std::slice::from_ref(&always), "production", utc("2026-12-05T12:00:00Z")).unwrap_err();
        assert_eq!(err.windows, vec!["always".to_owned()]);
        assert!(err.to_string().contains("frozen for more than 366 days"), "{err}");
    }

    #[test]
    fn upcoming_lists_the_next_starts_in_order() {
        let windows = vec![weekend(), once("launch", "2026-12-10T00:00:00Z", "2026-12-11T00:00:00Z")];
        let next: Vec<(String, DateTime<Utc>)> = upcoming(&windows, "production", utc("2026-12-07T12:00:00Z"), utc("2026-12-20T00:00:00Z"))
            .into_iter()
            .map(|o| (o.window, o.start))
            .collect();
        assert_eq!(
            next,
            vec![
                ("launch".to_owned(), utc("2026-12-10T00:00:00Z")),
                ("weekend".to_owned(), utc("2026-12-11T15:00:00Z")),
                ("weekend".to_owned(), utc("2026-12-18T15:00:00Z")),
            ]
        );
    }

    #[test]
    fn admission_skips_schedules_and_refuses_only_when_told() {
        let inside = utc("2026-12-05T12:00:00Z");
        let outside = utc("2026-12-09T12:00:00Z");
        let windows = [weekend()];
        // (at, refuse, scheduled, overridden, expected: none, "skipped" or "refused")
        let cases = [
            (outside, true, true, false, "open"),
            (inside, false, false, false, "open"),
            (inside, true, false, false, "refused"),
            (inside, false, true, false, "skipped"),
            (inside, true, true, false, "skipped"),
            (inside, true, false, true, "open"),
            (inside, false, true, true, "open"),
        ];
        for (at, refuse, scheduled, overridden, expected) in cases {
            let found = match admission(&windows, "production", refuse, scheduled, overridden, at) {
                Admission::Open => "open",
                Admission::Skipped(window) => {
                    assert_eq!(window.end, utc("2026-12-07T07:00:00Z"));
                    "skipped"
                }
                Admission::Refused(window) => {
                    assert_eq!(window.window, "weekend");
                    "refused"
                }
            };
            assert_eq!(found, expected, "at {at}, refuse {refuse}, scheduled {scheduled}, overridden {overridden}");
        }
    }

    const ZONES: &[&str] = &["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"];
    const CRONS: &[&str] = &["0 16 * * FRI", "30 2 * * *", "0 */6 * * *", "15 1 * * SUN", "0 0 1 * *", "0 9 * * MON-FRI", "45 23 * * *"];

    fn window_strategy() -> impl Strategy<Value = Window> {
        let recurring = (0..CRONS.len(), 0..ZONES.len(), 1i64..(72 * 60)).prop_map(|(cron, zone, minutes)| Window {
            name: format!("every-{cron}-{zone}"),
            reason: String::new(),
            environments: vec![],
            when: When::Every {
                start: Cron::parse(CRONS[cron]).unwrap(),
                zone: ZONES[zone].parse().unwrap(),
                duration: TimeDelta::minutes(minutes),
            },
        });
        let one_off = (0i64..(60 * 24 * 60), 1i64..(10 * 24 * 60)).prop_map(|(offset, minutes)| {
            let start = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(offset);
            Window {
                name: format!("once-{offset}"),
                reason: String::new(),
                environments: vec![],
                when: When::Once { start, end: start + TimeDelta::minutes(minutes) },
            }
        });
        prop_oneof![recurring, one_off]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_first_opening_is_never_before_the_ask_nor_inside_a_window(
            windows in proptest::collection::vec(window_strategy(), 0..5),
            minutes in 0i64..(90 * 24 * 60),
        ) {
            let from = utc("2026-01-01T00:00:00Z") + TimeDelta::minutes(minutes);
            if let Ok(open) = first_open(&windows, "production", from) {
                prop_assert!(open >= from);
                prop_assert!(in_force(&windows, "production", open).is_empty(), "{open} is inside a window");
                // Nothing between the ask and the opening was open: the opening is the first.
                if open > from {
                    prop_assert!(!in_force(&windows, "production", from).is_empty());
                }
            }
        }
    }
}
