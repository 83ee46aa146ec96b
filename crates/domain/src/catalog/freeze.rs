//! Freeze windows as the catalog declares them: per service under `extensions.baton.freeze`,
//! and for the whole organisation in one [`FREEZES_FILE`] at the catalog's root, which every
//! service's entry takes on when the catalog is loaded (and which is pushed with it). The rules
//! that read them are in [`crate::rules::freeze`].

use super::shape::{FREEZE, FREEZE_WINDOW, Kind};
use super::tree::{self, Node};
use super::validate::{Checker, index, join};
use super::{Diagnostic, Registry, Seconds};
use crate::rules::freeze::{self, Cron, When, Window};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The organisation's windows, beside the service definitions at the catalog's root.
pub const FREEZES_FILE: &str = "freezes.yaml";

/// The longest a recurring window may last: its occurrences are looked for that far back.
pub const MAX_WINDOW_DURATION: u64 = 31 * 24 * 60 * 60;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FreezeSpec {
    /// What a release does when it would start inside a window; unset: the organisation's,
    /// else [`OnFreeze::Wait`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_freeze: Option<OnFreeze>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<FreezeWindow>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFreeze {
    /// Wait for the window's end, then go on.
    #[default]
    Wait,
    /// Refuse a release that would start inside a window (between waves it always waits).
    Refuse,
}

/// One window: one-off (`start`, `end`) or recurring (`every`, `time-zone`, `duration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FreezeWindow {
    pub name: String,
    pub reason: String,
    /// Empty: every environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// A five-field cron expression on the wall clock of `time-zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Seconds>,
}

impl FreezeSpec {
    pub fn is_empty(&self) -> bool {
        self.on_freeze.is_none() && self.windows.is_empty()
    }

    pub fn on_freeze(&self) -> OnFreeze {
        self.on_freeze.unwrap_or_default()
    }

    /// Takes on the organisation's windows, and its `on-freeze` where the service says none.
    pub fn include(&mut self, organisation: &FreezeSpec) {
        self.on_freeze = self.on_freeze.or(organisation.on_freeze);
        self.windows.extend(organisation.windows.iter().cloned());
    }

    /// The windows as the rules read them. The loader checked each one, so this fails only for
    /// a spec made some other way.
    pub fn rules(&self) -> Result<Vec<Window>, String> {
        self.windows.iter().map(FreezeWindow::rule).collect()
    }
}

impl FreezeWindow {
    pub fn rule(&self) -> Result<Window, String> {
        let when = match (self.start, self.end, &self.every, &self.time_zone, self.duration) {
            (Some(start), Some(end), None, None, None) => When::Once { start, end },
            (None, None, Some(every), Some(zone), Some(duration)) => When::Every {
                start: Cron::parse(every)?,
                zone: parse_zone(zone)?,
                duration: TimeDelta::seconds(i64::try_from(duration.0.min(MAX_WINDOW_DURATION)).unwrap_or(i64::MAX)),
            },
            _ => return Err(format!("freeze window `{}`: {ONE_OFF_OR_RECURRING}", self.name)),
        };
        Ok(Window { name: self.name.clone(), reason: self.reason.clone(), environments: self.environments.clone(), when })
    }
}

const ONE_OFF_OR_RECURRING: &str =
    "expected either `start` and `end` (a one-off window) or `every`, `time-zone` and `duration` (a recurring one)";

pub(crate) fn parse_zone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|_| format!("an IANA time zone such as `Europe/Paris` or `UTC`, not `{text}`"))
}

pub(crate) fn check_timestamp(text: &str) -> Result<(), String> {
    DateTime::parse_from_rfc3339(text)
        .map(|_| ())
        .map_err(|_| format!("an RFC 3339 time such as `2026-12-24T18:00:00+01:00`, not `{text}`"))
}

/// Rules across the fields of a list of windows: each is one-off or recurring, ends after it
/// starts and opens again some day; names are unique.
pub(crate) fn check_windows(checker: &mut Checker, items: &[Node], path: &str) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let at = index(path, i);
        let known = checker.diagnostics.len();
        checker.object(item, &at, &FREEZE_WINDOW);
        if let Some(name) = item.get("name").and_then(Node::as_str)
            && let Some(first) = names.insert(name, i)
        {
            checker.error(
                item.line,
                &join(&at, "name"),
                format!("expected a name unique among the windows; `{name}` is also window {first}"),
            );
        }
        let has = |field: &str| item.get(field).is_some();
        let one_off = ["start", "end"];
        let recurring = ["every", "time-zone", "duration"];
        let mixed = one_off.iter().any(|f| has(f)) && recurring.iter().any(|f| has(f));
        let fields = if one_off.iter().any(|f| has(f)) { &one_off[..] } else { &recurring[..] };
        if mixed || !fields.iter().any(|f| has(f)) {
            checker.error(item.line, &at, ONE_OFF_OR_RECURRING);
            continue;
        }
        if let Some(missing) = fields.iter().find(|f| !has(f)) {
            let why = match *missing {
                "duration" | "end" => ": a window that never ends would freeze forever",
                _ => "",
            };
            checker.error(
                item.line,
                &at,
                format!(
                    "expected `{missing}` beside `{}`{why}",
                    fields.iter().filter(|f| has(f)).copied().collect::<Vec<_>>().join("`, `")
                ),
            );
            continue;
        }
        // The fields' own checks passed: judge the window as a whole.
        if checker.diagnostics.len() == known {
            window_rules(checker, item, &at);
        }
    }
}

fn window_rules(checker: &mut Checker, item: &Node, at: &str) {
    let Ok(window) = serde_json::from_value::<FreezeWindow>(item.to_json()) else { return };
    if let (Some(start), Some(end)) = (window.start, window.end)
        && end <= start
    {
        let line = item.get("end").map_or(item.line, |node| node.line);
        checker.error(line, &join(at, "end"), format!("expected an end after the start ({})", start.to_rfc3339()));
        return;
    }
    let Ok(rule) = window.rule() else { return };
    if window.every.is_some() {
        // Windows that chain into themselves (a daily window of 25h) never open.
        let now = Utc::now();
        if let Err(frozen) = freeze::first_open(std::slice::from_ref(&rule), "", now) {
            let line = item.get("duration").map_or(item.line, |node| node.line);
            checker.error(
                line,
                &join(at, "duration"),
                format!("expected a window that ends: each occurrence begins before the last one ends ({frozen})"),
            );
        }
    }
}

/// Reads the organisation's freeze file: one document of the shape of a service's `freeze` block.
pub fn parse_freezes(registry: &Registry, file_label: &str, text: &str) -> Result<FreezeSpec, Vec<Diagnostic>> {
    let mut checker = Checker::new(file_label, registry);
    let nodes = match tree::load(text) {
        Ok(nodes) => nodes,
        Err(err) => {
            return Err(vec![Diagnostic {
                file: file_label.into(),
                line: err.line,
                path: super::validate::DOCUMENT.into(),
                message: err.message,
            }]);
        }
    };
    let [doc] = &nodes[..] else {
        let message = format!("expected one document with `windows` (and `on-freeze`), found {}", nodes.len());
        return Err(vec![Diagnostic { file: file_label.into(), line: None, path: super::validate::DOCUMENT.into(), message }]);
    };
    checker.value(doc, "", &Kind::Object(&FREEZE));
    if !checker.diagnostics.is_empty() {
        return Err(checker.diagnostics);
    }
    serde_json::from_value(doc.to_json()).map_err(|_| {
        let message = "passed validation but does not fit Baton's model (a Baton bug)".to_string();
        vec![Diagnostic { file: file_label.into(), line: Some(doc.line), path: super::validate::DOCUMENT.into(), message }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogLoader;
    use crate::catalog::shape::test_registry;

    const SERVICE: &str = "
schema-version: v2.2
dd-service: web
extensions:
  baton:
    environment: production
    release-branch: main
    build: {provider: script, command: [sh, build.sh]}
    deploy: {provider: script, command: [sh, deploy.sh], waves: [{name: all, targets: [a]}]}
    health: {gates: [{provider: script, command: [sh, health.sh]}]}
";

    fn with_freeze(freeze: &str) -> String {
        let indented: String = freeze.lines().map(|line| format!("      {line}\n")).collect();
        format!("{SERVICE}    freeze:\n{indented}")
    }

    #[test]
    fn a_service_declares_one_off_and_recurring_windows() {
        let text = with_freeze(
            "on-freeze: refuse
windows:
  - {name: weekend, reason: nobody on call, every: 0 16 * * FRI, time-zone: Europe/Paris, duration: 64h, environments: [production]}
  - {name: launch, reason: the launch, start: '2026-12-20T00:00:00+01:00', end: '2027-01-04T00:00:00Z'}",
        );
        let (entries, diagnostics) = CatalogLoader::new(&test_registry()).parse("web.yaml", &text);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let freeze = &entries[0].delivery.freeze;
        assert_eq!(freeze.on_freeze(), OnFreeze::Refuse);
        let rules = freeze.rules().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(freeze.windows[0].duration, Some(Seconds(64 * 3600)));
        assert_eq!(freeze.windows[1].start.unwrap().to_rfc3339(), "2026-12-19T23:00:00+00:00");
    }

    #[test]
    fn bad_windows_are_named_with_the_field_and_what_was_expected() {
        let window = "extensions.baton.freeze.windows[0]";
        let cases: &[(&str, &str, &str)] = &[
            ("{name: w, reason: r, every: 0 16 * * FRI, time-zone: Europe/Pariss, duration: 1h}", "time-zone", "an IANA time zone"),
            ("{name: w, reason: r, every: 0 16 * FRI, time-zone: UTC, duration: 1h}", "every", "5 fields"),
            ("{name: w, reason: r, every: 0 25 * * *, time-zone: UTC, duration: 1h}", "every", "cron hour: `25`"),
            ("{name: w, reason: r, start: '2026-12-20T00:00:00Z', end: '2026-12-19T00:00:00Z'}", "end", "an end after the start"),
            ("{name: w, reason: r, start: '2026-12-20', end: '2026-12-21T00:00:00Z'}", "start", "an RFC 3339 time"),
            (
                "{name: w, reason: r, every: 0 16 * * FRI, time-zone: UTC}",
                "",
                "expected `duration` beside `every`, `time-zone`: a window that never ends",
            ),
            ("{name: w, reason: r, start: '2026-12-20T00:00:00Z'}", "", "expected `end` beside `start`"),
            ("{name: w, reason: r, every: 0 0 * * *, time-zone: UTC, duration: 25h}", "duration", "expected a window that ends"),
            ("{name: w, reason: r, every: 0 0 * * *, time-zone: UTC, duration: 32d}", "duration", "unknown unit 'd'"),
            ("{name: w, reason: r, every: 0 0 1 * *, time-zone: UTC, duration: 800h}", "duration", "at most 2678400s"),
            (
                "{name: w, reason: r, start: '2026-12-20T00:00:00Z', end: '2026-12-21T00:00:00Z', duration: 1h}",
                "",
                "either `start` and `end`",
            ),
            ("{name: w, reason: r}", "", "either `start` and `end`"),
            ("{name: w, every: 0 0 * * *, time-zone: UTC, duration: 1h}", "reason", "missing required field: expected a non-empty string"),
        ];
        for (item, field, expected) in cases {
            let text = with_freeze(&format!("windows:\n  - {item}"));
            let (_, diagnostics) = CatalogLoader::new(&test_registry()).parse("web.yaml", &text);
            let path = if field.is_empty() { window.to_string() } else { format!("{window}.{field}") };
            assert!(
                diagnostics.iter().any(|d| d.path == path && d.message.contains(expected) && d.file == "web.yaml" && d.line.is_some()),
                "{item}: expected `{expected}` at {path}, got {diagnostics:?}"
            );
        }
        let text = with_freeze("on-freeze: later\nwindows: []");
        let (_, diagnostics) = CatalogLoader::new(&test_registry()).parse("web.yaml", &text);
        assert!(
            diagnostics.iter().any(|d| d.path == "extensions.baton.freeze.on-freeze" && d.message.contains("`wait`, `refuse`")),
            "{diagnostics:?}"
        );
        let text = with_freeze(
            "windows:
  - {name: w, reason: r, every: 0 0 * * *, time-zone: UTC, duration: 1h}
  - {name: w, reason: r, every: 0 1 * * *, time-zone: UTC, duration: 1h}",
        );
        let (_, diagnostics) = CatalogLoader::new(&test_registry()).parse("web.yaml", &text);
        assert!(
            diagnostics.iter().any(|d| d.path == "extensions.baton.freeze.windows[1].name" && d.message.contains("unique")),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn the_organisation_file_at_the_root_applies_to_every_service() {
        let dir = std::env::temp_dir().join(format!("baton-freezes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("services")).unwrap();
        std::fs::write(
            dir.join("services/web.yaml"),
            with_freeze("windows: [{name: own, reason: r, start: '2026-12-20T00:00:00Z', end: '2026-12-21T00:00:00Z'}]"),
        )
        .unwrap();
        std::fs::write(
            dir.join(FREEZES_FILE),
            "on-freeze: refuse\nwindows:\n  - {name: holidays, reason: everyone is away, start: '2026-12-24T00:00:00Z', end: '2026-12-27T00:00:00Z'}\n",
        )
        .unwrap();
        let root = dir.canonicalize().unwrap();
        let loaded = CatalogLoader { root: Some(&root), ..CatalogLoader::new(&test_registry()) }.load(&root).unwrap();
        assert!(loaded.diagnostics().is_empty(), "{:?}", loaded.diagnostics());
        let freeze = &loaded.services()[0].delivery.freeze;
        assert_eq!(freeze.windows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["own", "holidays"]);
        assert_eq!(freeze.on_freeze(), OnFreeze::Refuse);
        assert!(loaded.freezes().is_some_and(|(file, _)| file.ends_with(FREEZES_FILE)));

        std::fs::write(
            dir.join(FREEZES_FILE),
            "windows:\n  - {name: holidays, reason: r, every: 0 0 * * *, time-zone: Mars/Olympus, duration: 1h}\n",
        )
        .unwrap();
        let loaded = CatalogLoader { root: Some(&root), ..CatalogLoader::new(&test_registry()) }.load(&root).unwrap();
        let diagnostic = &loaded.diagnostics()[0];
        assert!(diagnostic.file.ends_with(FREEZES_FILE) && diagnostic.path == "windows[0].time-zone", "{diagnostic:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
