//! Walks a document tree against the [`shape`](super::shape) tables and records
//! every problem, not just the first. Messages say what was expected and never
//! repeat a value that could be a secret.

use super::schedule::check_schedule;
use super::shape::{
    Field, GATE, Kind, LABEL, NAME, NOTIFIER, NameRule, PROVIDER, ProviderShape, Registry, Shape, Slot, TARGET, TOPOLOGY_WAVES, WAVE,
    quoted_list,
};
use super::topology::{Percent, Step, Topology};
use super::tree::{Entry, Node, Value};
use super::{Diagnostic, HealthSpec, Seconds, SecretRef, WaveSpec};
use crate::rules::freeze::Cron;
use crate::rules::watch::{EVENTS_PER_SAMPLE, HISTORY_QUOTA, MAX_WATCH_SAMPLES};
use crate::support::LOCK_LEASE;
use std::borrow::Cow;
use std::collections::HashMap;

/// Path shown for problems that concern a whole document.
pub(crate) const DOCUMENT: &str = "(document)";

pub(crate) struct Checker<'a> {
    file: &'a str,
    pub registry: &'a Registry,
    pub diagnostics: Vec<Diagnostic>,
    /// [`Kind::WaveTarget`] values seen (line, path, name), judged against the waves once the
    /// whole block has been walked.
    wave_targets: Vec<(usize, String, String)>,
}

/// The secret names (Secrets Manager) and parameter paths (SSM, without the leading `/`) the
/// stack's functions may read (`infra/template.yaml`): notify's, and every other function's.
pub const NOTIFY_SECRETS: &str = "baton/slack/";
pub const PROVIDER_SECRETS: &str = "baton/providers/";

/// The name in a Secrets Manager id: the id itself, or the name part of its ARN (before the
/// six random characters Secrets Manager appends, which the grant's `*` covers).
fn secret_name(id: &str) -> &str {
    if id.starts_with("arn:") { id.splitn(7, ':').nth(6).unwrap_or(id) } else { id }
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a str, registry: &'a Registry) -> Self {
        Checker { file, registry, diagnostics: Vec::new(), wave_targets: Vec::new() }
    }

    pub fn error(&mut self, line: usize, path: &str, message: impl Into<String>) {
        let path = if path.is_empty() { DOCUMENT } else { path };
        self.diagnostics.push(Diagnostic {
            file: self.file.to_string(),
            line: Some(line),
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn mismatch(&mut self, node: &Node, path: &str, expected: &str) {
        let advice = if node.value == Value::Null { " (remove the key to leave it unset)" } else { "" };
        self.error(node.line, path, format!("expected {expected}, found {}{advice}", node.kind_name()));
    }

    /// Checks a mapping field by field: types, required fields, unknown keys.
    pub fn object(&mut self, node: &Node, path: &str, shape: &'static Shape) {
        let Some(entries) = node.as_map() else {
            return self.mismatch(node, path, "a mapping");
        };
        // Without a known provider the allowed keys are unknown, so unknown keys are not judged.
        let (fields, closed, provider) = self.fields_of(node, path, shape);
        for entry in entries {
            if shape.providers.is_some() && entry.key == PROVIDER {
                continue;
            }
            let entry_path = join(path, &entry.key);
            match fields.iter().find(|f| f.name == entry.key) {
                Some(field) => self.value(&entry.value, &entry_path, &field.kind),
                None if closed => {
                    let mut names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                    if shape.providers.is_some() {
                        names.insert(0, PROVIDER);
                    }
                    let mut message = unknown_message("field", &entry.key, &names);
                    if let Some(hint) = shape.unknown_hint {
                        message = format!("{message}. {hint}");
                    }
                    self.error(entry.key_line, &entry_path, message);
                }
                None => {}
            }
        }
        for field in fields.iter().filter(|f| f.required && node.get(f.name).is_none()) {
            self.error(node.line, &join(path, field.name), format!("missing required field: expected {}", field.kind.expected()));
        }
        if !shape.at_least_one.is_empty() && shape.at_least_one.iter().all(|name| node.get(name).is_none()) {
            self.error(node.line, path, format!("expected at least one of {}", quoted_list(shape.at_least_one)));
        }
        if let Some((names, why)) = provider.and_then(|p| p.at_least_one)
            && names.iter().all(|name| node.get(name).is_none())
        {
            let expected = match names {
                [one, other] => format!("`{one}`, `{other}` or both"),
                _ => format!("at least one of {}", quoted_list(names)),
            };
            self.error(node.line, path, format!("expected {expected}: {why}"));
        }
    }

    /// The fields `node` may have, whether others are refused, and the provider its
    /// `provider` picked when the shape takes one.
    fn fields_of(&mut self, node: &Node, path: &str, shape: &'static Shape) -> (Vec<&'static Field>, bool, Option<&'static ProviderShape>) {
        let mut fields: Vec<&'static Field> = shape.fields.iter().collect();
        let Some(slot) = shape.providers else {
            return (fields, true, None);
        };
        let providers: Vec<&str> = self.registry.providers(slot).map(|p| p.name).collect();
        let provider_path = join(path, PROVIDER);
        let Some(provider) = node.get(PROVIDER) else {
            let message = format!("missing required field: expected one of {}", quoted_list(&providers));
            self.error(node.line, &provider_path, message);
            return (fields, false, None);
        };
        let Some(name) = provider.as_str() else {
            self.mismatch(provider, &provider_path, &format!("one of {}", quoted_list(&providers)));
            return (fields, false, None);
        };
        match self.registry.find(slot, name) {
            Some(found) => {
                fields.extend(found.fields);
                (fields, true, Some(found))
            }
            None => {
                self.error(provider.line, &provider_path, unknown_message("provider", name, &providers));
                (fields, false, None)
            }
        }
    }

    pub fn value(&mut self, node: &Node, path: &str, kind: &Kind) {
        match (kind, &node.value) {
            (Kind::AnyText, Value::Str(_)) | (Kind::Mapping, Value::Map(_)) => {}
            (Kind::Text, Value::Str(s)) if !s.trim().is_empty() => {}
            (Kind::Name, Value::Str(s)) => self.name(node, path, &NAME, s),
            (Kind::Target, Value::Str(s)) => self.name(node, path, &TARGET, s),
            (Kind::Enum(values), Value::Str(s)) if !values.contains(&s.as_str()) => {
                self.error(node.line, path, unknown_message("value", s, values));
            }
            (Kind::Enum(_), Value::Str(_)) => {}
            (Kind::TextList, Value::Seq(items)) => self.each(items, path, &Kind::AnyText),
            (Kind::Targets, Value::Seq(items)) if !items.is_empty() => self.each(items, path, &Kind::Target),
            (Kind::Url, Value::Str(s)) if is_http_url(s) => {}
            (Kind::Url, Value::Str(s)) => {
                let advice = if s.contains("://") { String::new() } else { format!(" (with its scheme: http://{})", shown(s)) };
                self.error(
                    node.line,
                    path,
                    format!("expected {} such as https://example.com/healthz, found '{}'{advice}", kind.expected(), shown(s)),
                );
            }
            (Kind::WaveTarget, Value::Str(s)) => self.wave_targets.push((node.line, path.to_string(), s.clone())),
            (Kind::Checked(rule), Value::Int(n)) if rule.integers && *n > 0 => {}
            (Kind::Checked(rule), Value::Str(s)) => {
                if let Err(why) = (rule.check)(s) {
                    self.error(node.line, path, format!("expected {}; {why}", rule.expected));
                }
            }
            (Kind::CheckedScalars(rule), Value::Map(entries)) => {
                for entry in entries {
                    let entry_path = join(path, &entry.key);
                    if let Err(why) = (rule.check)(&entry.key) {
                        self.error(entry.key_line, &entry_path, format!("expected {}; {why}", rule.expected));
                    }
                    if !matches!(entry.value.value, Value::Str(_) | Value::Int(_) | Value::Bool(_)) {
                        self.mismatch(
                            &entry.value,
                            &entry_path,
                            "a string, an integer or a boolean, as the provider's configuration declares it",
                        );
                    }
                }
            }
            (Kind::Duration { min, max }, _) => self.duration(node, path, *min, *max),
            (Kind::Count { min }, Value::Int(n)) if *n >= 0 && (*n as u64) >= *min && *n <= i64::from(u32::MAX) => {}
            (Kind::Between { min, max }, Value::Int(n)) if u64::try_from(*n).is_ok_and(|n| (*min..=*max).contains(&n)) => {}
            (Kind::Between { .. }, Value::Int(n)) => self.error(node.line, path, format!("expected {}, found {n}", kind.expected())),
            (Kind::WorkingDir | Kind::RelativePath, Value::Str(s)) if !s.trim().is_empty() => {}
            (Kind::Argv, Value::Seq(items)) => self.argv(node, items, path),
            (Kind::Argv, Value::Str(_)) => self.error(
                node.line,
                path,
                format!("expected {}, found a string (commands run without a shell: split the words)", kind.expected()),
            ),
            (Kind::EnvName, Value::Str(name)) => self.env_name(node.line, path, name),
            (Kind::Env, Value::Map(entries)) => {
                for entry in entries {
                    let entry_path = join(path, &entry.key);
                    self.env_name(entry.key_line, &entry_path, &entry.key);
                    if !matches!(entry.value.value, Value::Str(_)) {
                        self.mismatch(&entry.value, &entry_path, "a string (quote numbers and booleans)");
                    }
                }
            }
            (Kind::EnvNames, Value::Seq(items)) => self.each(items, path, &Kind::EnvName),
            (Kind::Secret, _) => self.secret(node, path),
            (Kind::Schedule, Value::Str(s)) => {
                if let Err(why) = check_schedule(s) {
                    self.error(node.line, path, format!("expected {why}"));
                }
            }
            (Kind::Timestamp, Value::Str(s)) => self.checked(node, path, super::freeze::check_timestamp(s)),
            (Kind::TimeZone, Value::Str(s)) => self.checked(node, path, super::freeze::parse_zone(s).map(|_| ())),
            (Kind::Cron, Value::Str(s)) => self.checked(node, path, Cron::parse(s).map(|_| ())),
            (Kind::FreezeWindows, Value::Seq(items)) => super::freeze::check_windows(self, items, path),
            (Kind::Object(shape), _) => self.object(node, path, shape),
            (Kind::List(shape), Value::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.object(item, &index(path, i), shape);
                }
            }
            (Kind::Waves, Value::Seq(items)) if !items.is_empty() => self.waves(items, path),
            (Kind::Waves, Value::Seq(_)) => self.error(node.line, path, "expected at least one wave"),
            (Kind::Waves, Value::Map(_)) => self.object(node, path, &TOPOLOGY_WAVES),
            (Kind::LabeledTargets, Value::Seq(items)) if !items.is_empty() => self.labeled_targets(items, path),
            (Kind::WaveOrder, Value::Seq(items)) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(text) if text.ends_with('%') => self.checked(item, &index(path, i), Percent::parse(text).map(|_| ())),
                        Some(Step::ONE | Step::REST) => {}
                        Some(label) => self.name(item, &index(path, i), &LABEL, label),
                        None => self.mismatch(item, &index(path, i), "a step: `one`, a label, `rest`, or a percentage such as `10%`"),
                    }
                }
            }
            (Kind::Shares, Value::Str(text)) => self.checked(node, path, Percent::parse(text).map(|_| ())),
            (Kind::Shares, Value::Map(entries)) => {
                for entry in entries {
                    let entry_path = join(path, &entry.key);
                    if let Err(why) = LABEL.check(&entry.key) {
                        self.error(entry.key_line, &entry_path, format!("expected {}; {why}", LABEL.expected()));
                    }
                    match entry.value.as_str() {
                        Some(text) => self.checked(&entry.value, &entry_path, Percent::parse(text).map(|_| ())),
                        None => self.mismatch(&entry.value, &entry_path, "a percentage such as `50%`"),
                    }
                }
            }
            (Kind::Gates, Value::Seq(items)) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    self.object(item, &index(path, i), &GATE);
                }
            }
            (Kind::Gates, Value::Seq(_)) => self.error(node.line, path, "expected at least one gate"),
            (Kind::Notifiers, Value::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    self.object(item, &index(path, i), &NOTIFIER);
                }
            }
            (Kind::Notifiers, Value::Map(entries)) => {
                for entry in entries {
                    self.keyed_notifier(entry, &join(path, &entry.key));
                }
            }
            (Kind::Bool, Value::Bool(_)) => {}
            (Kind::Approvers, Value::Seq(items)) if !items.is_empty() => self.each(items, path, &Kind::Text),
            (Kind::Ids, Value::Seq(items)) if items.is_empty() => self.mismatch(node, path, &kind.expected()),
            (Kind::Ids, Value::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !matches!(item.value, Value::Int(1..)) {
                        self.mismatch(item, &index(path, i), "an id (a positive whole number)");
                    }
                }
            }
            (Kind::HttpStatuses, Value::Seq(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !matches!(item.value, Value::Int(100..=599)) {
                        self.mismatch(item, &index(path, i), "an HTTP status code (100-599)");
                    }
                }
            }
            _ => self.mismatch(node, path, &kind.expected()),
        }
    }

    /// A notifier written as `name: {fields}`: checked as the block `{provider: name, fields}`.
    fn keyed_notifier(&mut self, entry: &Entry, path: &str) {
        if self.registry.find(Slot::Notify, &entry.key).is_none() {
            let names = self.registry.names(Slot::Notify);
            return self.error(entry.key_line, path, unknown_message("notifier", &entry.key, &names));
        }
        let Some(fields) = entry.value.as_map() else {
            return self.mismatch(&entry.value, path, "a mapping");
        };
        if let Some(provider) = entry.value.get(PROVIDER) {
            let message = format!("the key `{}` already names the notifier: remove `{PROVIDER}`", entry.key);
            return self.error(provider.line, &join(path, PROVIDER), message);
        }
        let named = Entry {
            key: PROVIDER.into(),
            key_line: entry.key_line,
            value: Node { line: entry.key_line, value: Value::Str(entry.key.clone()) },
        };
        let block = Node { line: entry.value.line, value: Value::Map(std::iter::once(named).chain(fields.iter().cloned()).collect()) };
        self.object(&block, path, &NOTIFIER);
    }

    fn checked(&mut self, node: &Node, path: &str, verdict: Result<(), String>) {
        if let Err(why) = verdict {
            self.error(node.line, path, format!("expected {why}"));
        }
    }

    /// Each target: its `name` and its labels, label names plain and values names (numbers quoted).
    fn labeled_targets(&mut self, items: &[Node], path: &str) {
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let Some(entries) = item.as_map() else {
                self.mismatch(item, &item_path, "a mapping of the target's `name` and its labels, e.g. `{name: web-1, region: eu-west-1}`");
                continue;
            };
            if item.get("name").is_none() {
                self.error(item.line, &join(&item_path, "name"), format!("missing required field: expected {}", TARGET.expected()));
            }
            for entry in entries {
                let entry_path = join(&item_path, &entry.key);
                let rule = if entry.key == "name" {
                    &TARGET
                } else if let Err(why) = LABEL.check(&entry.key) {
                    self.error(entry.key_line, &entry_path, format!("expected {}; {why}", LABEL.expected()));
                    continue;
                } else if [Step::ONE, Step::REST].contains(&entry.key.as_str()) {
                    let message = format!("`{}` is a step of `waves.order`, not a label: name the failure domain otherwise", entry.key);
                    self.error(entry.key_line, &entry_path, message);
                    continue;
                } else {
                    &NAME
                };
                match entry.value.as_str() {
                    Some(text) => self.name(&entry.value, &entry_path, rule, text),
                    None => self.mismatch(
                        &entry.value,
                        &entry_path,
                        &format!("{} (quote numbers: `account: \"123456789012\"`)", rule.expected()),
                    ),
                }
            }
        }
    }

    fn env_name(&mut self, line: usize, path: &str, name: &str) {
        if !is_env_name(name) {
            self.error(line, path, format!("expected {}", Kind::EnvName.expected()));
        } else if name.starts_with("BATON_") {
            self.error(line, path, "`BATON_*` variables are set by Baton; choose another name");
        }
    }

    fn each(&mut self, items: &[Node], path: &str, kind: &Kind) {
        for (i, item) in items.iter().enumerate() {
            self.value(item, &index(path, i), kind);
        }
    }

    fn name(&mut self, node: &Node, path: &str, rule: &NameRule, text: &str) {
        if let Err(why) = rule.check(text) {
            self.error(node.line, path, format!("expected {}; {why}", rule.expected()));
        }
    }

    fn duration(&mut self, node: &Node, path: &str, min: u64, max: u64) {
        let Some(seconds) = duration_seconds(node) else {
            return self.mismatch(node, path, &Kind::Duration { min, max }.expected());
        };
        match seconds {
            Err(why) => self.error(node.line, path, format!("expected {why}")),
            Ok(n) if n < min => self.error(node.line, path, format!("expected a duration of at least {min}s")),
            Ok(n) if n > max => self.error(node.line, path, format!("expected a duration of at most {max}s, found {n}s")),
            Ok(_) => {}
        }
    }

    fn argv(&mut self, node: &Node, items: &[Node], path: &str) {
        match items.first() {
            None => self.error(node.line, path, format!("an empty command: expected {}", Kind::Argv.expected())),
            Some(program) if program.as_str().is_some_and(|p| p.trim().is_empty()) => {
                self.error(program.line, &index(path, 0), "expected a program name, found an empty string");
            }
            Some(_) => {}
        }
        self.each(items, path, &Kind::AnyText);
        // The system refuses to run such a word: caught here, not retried as an outage.
        for (i, item) in items.iter().enumerate() {
            if item.as_str().is_some_and(|word| word.contains('\0')) {
                self.error(item.line, &index(path, i), "found a NUL byte: a command's words cannot hold one");
            }
        }
    }

    fn secret(&mut self, node: &Node, path: &str) {
        let parsed = match &node.value {
            Value::Str(text) => SecretRef::parse(text),
            Value::Map(entries) => match &entries[..] {
                [entry] => match entry.value.as_str() {
                    Some(name) => SecretRef::parse(&format!("{}:{name}", entry.key)),
                    None => return self.mismatch(&entry.value, &join(path, &entry.key), "a secret name"),
                },
                _ => Err(String::new()),
            },
            _ => Err(String::new()),
        };
        if let Err(why) = parsed {
            let why = if why.is_empty() { String::new() } else { format!(" ({why})") };
            // The value is deliberately left out: it is most likely the secret itself.
            self.error(
                node.line,
                path,
                format!(
                    "expected {}{why}, not the secret itself (value not shown); keep the secret in an \
                     environment variable, SSM Parameter Store or Secrets Manager",
                    Kind::Secret.expected()
                ),
            );
        }
    }

    /// Rules across fields of the Baton block at `path`, judged where those fields are
    /// themselves valid (their own problems are reported by [`Checker::object`]).
    pub fn delivery_rules(&mut self, baton: &Node, path: &str) {
        let computed = self.topology_rules(baton, path);
        self.wave_target_rules(baton);
        self.watch_rules(baton, path, computed.as_deref());
    }

    /// Labeled `targets` go with `waves: {from: topology}` and the other way round; the waves they
    /// give are computed here, so a topology that cannot satisfy its policy is refused with why
    /// (`rules::topology`). Returns the computed waves.
    fn topology_rules(&mut self, baton: &Node, path: &str) -> Option<Vec<WaveSpec>> {
        let deploy = baton.get("deploy")?;
        let deploy_path = join(path, "deploy");
        let waves = deploy.get("waves")?;
        match (&waves.value, deploy.get("targets")) {
            (Value::Map(_), None) => {
                let message = "missing required field: `waves: {from: topology}` computes the waves from labeled targets, \
                               e.g. `targets: [{name: web-1, region: eu-west-1, az: eu-west-1a}]`";
                self.error(deploy.line, &join(&deploy_path, "targets"), message);
                None
            }
            (Value::Seq(_), Some(targets)) => {
                let message = "`targets` with labels go with `waves: {from: topology, ...}`: listed waves name their own targets";
                let line =
                    deploy.as_map().and_then(|entries| entries.iter().find(|e| e.key == "targets")).map_or(targets.line, |e| e.key_line);
                self.error(line, &join(&deploy_path, "targets"), message);
                None
            }
            // Judged once the fields themselves are valid (their problems were reported one by one).
            (Value::Map(_), Some(_)) if self.diagnostics.iter().any(|d| d.path.starts_with(&deploy_path)) => None,
            (Value::Map(_), Some(targets)) => {
                let topology = Topology {
                    targets: serde_json::from_value(targets.to_json()).ok()?,
                    policy: serde_json::from_value(waves.to_json()).ok()?,
                };
                match crate::rules::topology::compute(&topology) {
                    Ok(computed) => Some(computed),
                    Err(refusal) => {
                        let line = node_at(deploy, &refusal.path).line;
                        self.error(line, &join(&deploy_path, &refusal.path), refusal.message);
                        None
                    }
                }
            }
            _ => None,
        }
    }

    /// Each sample of the gates renews the release lock, so samples come well within its lease;
    /// and every sample costs the execution history events, so the bakes fit in its quota.
    fn watch_rules(&mut self, baton: &Node, path: &str, computed: Option<&[WaveSpec]>) {
        let interval_node = baton.get("health").and_then(|h| h.get("interval"));
        let interval = match interval_node.map(duration_seconds) {
            None => HealthSpec::default_interval().0,
            Some(Some(Ok(seconds))) if seconds > 0 => seconds,
            Some(_) => return, // reported by the field's own check
        };
        let most = LOCK_LEASE.as_secs() / 2;
        if interval > most
            && let Some(node) = interval_node
        {
            let message = format!(
                "expected an interval of at most {}: each sample renews the release lock, whose lease is {}",
                Seconds(most),
                Seconds(LOCK_LEASE.as_secs())
            );
            return self.error(node.line, &join(path, "health.interval"), message);
        }
        let Some(waves) = baton.get("deploy").and_then(|deploy| deploy.get("waves")) else { return };
        let waves_path = join(path, "deploy.waves");
        // Each wave's bake: where it is written, and its seconds.
        let bakes: Vec<(usize, String, u64)> = match (&waves.value, computed) {
            (Value::Seq(listed), _) => listed
                .iter()
                .enumerate()
                .filter_map(|(i, wave)| {
                    let bake = wave.get("bake")?;
                    let Some(Ok(seconds)) = duration_seconds(bake) else { return None };
                    Some((bake.line, join(&index(&waves_path, i), "bake"), seconds))
                })
                .collect(),
            (Value::Map(_), Some(computed)) => {
                let line = waves.get("bake").map_or(waves.line, |bake| bake.line);
                computed.iter().map(|wave| (line, join(&waves_path, "bake"), wave.bake.0)).collect()
            }
            _ => return,
        };
        let mut samples: u64 = 0;
        for (line, bake_path, seconds) in bakes {
            samples = samples.saturating_add(seconds / interval + 1);
            if samples > MAX_WATCH_SAMPLES {
                let message = format!(
                    "expected bakes that {} samples of the gates cover at `health.interval` {}s (about {} history events each, \
                     within the execution's quota of {}); up to this wave they take {samples}: bake less or sample less often",
                    MAX_WATCH_SAMPLES, interval, EVENTS_PER_SAMPLE, HISTORY_QUOTA
                );
                let message = match computed {
                    Some(computed) => format!("{message} (the topology gives {} waves)", computed.len()),
                    None => message,
                };
                return self.error(line, &bake_path, message);
            }
        }
    }

    /// Refuses providers that run on Baton's own machine, for a catalog whose releases run on AWS.
    pub fn cloud_rules(&mut self, baton: &Node, path: &str) {
        for block in provider_nodes(baton, path) {
            let Some(name) = block.name else { continue };
            if self.registry.find(block.slot, name).is_some_and(|shape| shape.local_only) {
                let alternatives = self.registry.cloud_alternatives(block.slot);
                let message = format!("`{name}` runs on the machine running Baton, which releases on AWS do not have: use {alternatives}");
                self.error(block.node.line, &join(&block.path, PROVIDER), message);
            }
        }
        self.secret_prefix_rules(baton, path, &join(path, "notify"));
    }

    /// Every `secrets-manager:` and `ssm:` reference names a secret the function that reads it
    /// may read on AWS: notify reads the `notify` block's under [`NOTIFY_SECRETS`], the other
    /// functions the rest under [`PROVIDER_SECRETS`]. Elsewhere the release fails on AWS with
    /// AccessDenied (a page, silently).
    fn secret_prefix_rules(&mut self, node: &Node, path: &str, notify: &str) {
        match &node.value {
            Value::Str(text) => {
                let Ok(reference) = SecretRef::parse(text) else { return };
                let under_notify = path.strip_prefix(notify).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
                let prefix = if under_notify { NOTIFY_SECRETS } else { PROVIDER_SECRETS };
                let (name, expected) = match &reference {
                    SecretRef::Env(_) => return,
                    SecretRef::SecretsManager(id) => (secret_name(id), format!("secrets-manager:{prefix}<name>")),
                    SecretRef::Ssm(name) => (name.trim_start_matches('/'), format!("ssm:/{prefix}<name>")),
                };
                if !name.starts_with(prefix) {
                    let reader = if prefix == NOTIFY_SECRETS { "notify" } else { "the build, deploy and health functions" };
                    let message = format!(
                        "`{}` is outside what {reader} may read on AWS: expected {expected} (the stack grants `{prefix}*`)",
                        shown(text)
                    );
                    self.error(node.line, path, message);
                }
            }
            // The tagged form, `{ssm: /name}` or `{secrets-manager: id}`.
            Value::Map(entries) if entries.len() == 1 && matches!(entries[0].key.as_str(), "ssm" | "secrets-manager") => {
                let Some(name) = entries[0].value.as_str() else { return };
                let text = format!("{}:{name}", entries[0].key);
                self.secret_prefix_rules(&Node { line: node.line, value: Value::Str(text) }, path, notify);
            }
            Value::Seq(items) => items.iter().enumerate().for_each(|(i, item)| self.secret_prefix_rules(item, &index(path, i), notify)),
            Value::Map(entries) => entries.iter().for_each(|entry| self.secret_prefix_rules(&entry.value, &join(path, &entry.key), notify)),
            _ => {}
        }
    }

    /// Every [`Kind::WaveTarget`] names a target of the waves (a placement of a target that no
    /// wave deploys would never apply).
    fn wave_target_rules(&mut self, baton: &Node) {
        let named = std::mem::take(&mut self.wave_targets);
        let deploy = baton.get("deploy");
        let targets: Vec<&str> = match (deploy.and_then(|d| d.get("waves")).map(|w| &w.value), deploy.and_then(|d| d.get("targets"))) {
            (Some(Value::Seq(waves)), _) => waves
                .iter()
                .filter_map(|wave| match wave.get("targets").map(|t| &t.value) {
                    Some(Value::Seq(items)) => Some(items.iter().filter_map(Node::as_str)),
                    _ => None,
                })
                .flatten()
                .collect(),
            (Some(Value::Map(_)), Some(Node { value: Value::Seq(labeled), .. })) => {
                labeled.iter().filter_map(|target| target.get("name").and_then(Node::as_str)).collect()
            }
            _ => return,
        };
        for (line, path, name) in named {
            if !targets.contains(&name.as_str()) {
                self.error(line, &path, unknown_message("target", &name, &targets));
            }
        }
    }

    /// What the approval block's shape cannot say alone: an approval that is required names who gives it.
    pub(crate) fn approval(&mut self, approval: &Node, path: &str) {
        let required = approval.get("required").is_some_and(|r| matches!(r.value, Value::Bool(true)));
        if required && approval.get("approvers").is_none() {
            self.error(approval.line, &join(path, "approvers"), "missing required field: a required approval names its approvers");
        }
    }

    fn waves(&mut self, waves: &[Node], path: &str) {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut targets: HashMap<&str, usize> = HashMap::new();
        for (i, wave) in waves.iter().enumerate() {
            let wave_path = index(path, i);
            self.object(wave, &wave_path, &WAVE);
            if let Some(approval) = wave.get("approval") {
                self.approval(approval, &join(&wave_path, "approval"));
            }
            if let Some(name_node) = wave.get("name")
                && let Some(name) = name_node.as_str()
                && let Some(first) = names.insert(name, i)
            {
                names.insert(name, first);
                let message = format!("duplicate wave name `{name}`: already used by {}", index(path, first));
                self.error(name_node.line, &join(&wave_path, "name"), message);
            }
            let Some(Value::Seq(items)) = wave.get("targets").map(|t| &t.value) else { continue };
            for (k, target_node) in items.iter().enumerate() {
                let Some(target) = target_node.as_str() else { continue };
                let Some(first) = targets.insert(target, i) else { continue };
                targets.insert(target, first);
                let message = if first == i {
                    format!("target `{target}` is listed twice in this wave")
                } else {
                    let owner = waves[first].get("name").and_then(Node::as_str).unwrap_or("?");
                    format!("target `{target}` is already in wave `{owner}` ({}): a target belongs to one wave", index(path, first))
                };
                self.error(target_node.line, &index(&join(&wave_path, "targets"), k), message);
            }
        }
    }
}

/// One provider block of a Baton block, where the validator found it.
pub(crate) struct ProviderNode<'n> {
    pub slot: Slot,
    pub path: String,
    /// The provider it names (its `provider`, or its key in `notify`'s keyed form), if it names one.
    pub name: Option<&'n str>,
    pub node: &'n Node,
}

/// The provider blocks of a Baton block.
pub(crate) fn provider_nodes<'n>(baton: &'n Node, path: &str) -> Vec<ProviderNode<'n>> {
    let block =
        |slot: Slot, path: String, node: &'n Node| ProviderNode { slot, path, name: node.get(PROVIDER).and_then(Node::as_str), node };
    let mut blocks = Vec::new();
    for (slot, key) in [(Slot::Build, "build"), (Slot::Deploy, "deploy")] {
        if let Some(node) = baton.get(key) {
            blocks.push(block(slot, join(path, key), node));
        }
    }
    let lists = [
        (Slot::Gate, "health.gates", baton.get("health").and_then(|h| h.get("gates"))),
        (Slot::Export, "telemetry", baton.get("telemetry")),
    ];
    let lists = lists.into_iter().chain([(Slot::Notify, "notify", baton.get("notify"))]);
    for (slot, key, node) in lists {
        let list_path = join(path, key);
        match node.map(|n| &n.value) {
            Some(Value::Seq(items)) => blocks.extend(items.iter().enumerate().map(|(i, item)| block(slot, index(&list_path, i), item))),
            // `notify`'s keyed form: each key names its notifier.
            Some(Value::Map(entries)) if slot == Slot::Notify => blocks.extend(entries.iter().map(|entry| ProviderNode {
                slot,
                path: join(&list_path, &entry.key),
                name: Some(&entry.key),
                node: &entry.value,
            })),
            _ => {}
        }
    }
    blocks
}

/// The node at `path` under `node` (`targets[3].az`, `waves.order[1]`), or the deepest one found.
fn node_at<'n>(node: &'n Node, path: &str) -> &'n Node {
    let mut at = node;
    for segment in path.split('.') {
        let (key, item) = match segment.split_once('[') {
            Some((key, item)) => (key, item.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some(next) = at.get(key) else { break };
        at = next;
        match (&at.value, item) {
            (Value::Seq(items), Some(i)) if i < items.len() => at = &items[i],
            (_, None) => {}
            _ => break,
        }
    }
    at
}

/// A duration node's seconds, or why it is no duration; None when it is neither number nor string.
fn duration_seconds(node: &Node) -> Option<Result<u64, String>> {
    match &node.value {
        Value::Int(n) => Some(u64::try_from(*n).map_err(|_| "a duration that is not negative".to_string())),
        Value::Str(s) => Some(Seconds::parse(s).map(|s| s.0)),
        _ => None,
    }
}

/// "unknown field `comand` (did you mean `command`?); expected one of ..."
pub(crate) fn unknown_message(what: &str, found: &str, expected: &[&str]) -> String {
    let suggestion = did_you_mean(found, expected).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
    format!("unknown {what} `{}`{suggestion}; expected one of {}", shown(found), quoted_list(expected))
}

/// `text` as quoted in a message: cut short, since hostile text can be a megabyte long.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

/// The candidate closest to `found` by edit distance, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'c>(found: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let found = found.to_ascii_lowercase();
    let limit = (found.chars().count() / 3).max(2);
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(&found, &c.to_ascii_lowercase()), *c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

pub(crate) fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_http_url(s: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| s.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_come_from_close_names_only() {
        let names = ["command", "working-dir", "artifact-file", "env", "timeout"];
        assert_eq!(did_you_mean("comand", &names), Some("command"));
        assert_eq!(did_you_mean("working_dir", &names), Some("working-dir"));
        assert_eq!(did_you_mean("timeuot", &names), Some("timeout"));
        assert_eq!(did_you_mean("replicas", &names), None);
    }

    #[test]
    fn names_and_env_names() {
        assert_eq!(NAME.check("hello-web.v2_1"), Ok(()));
        assert_eq!(NAME.check(".hidden"), Err("found `.` first".into()));
        assert_eq!(NAME.check("-rf"), Err("found `-` first".into()));
        assert_eq!(NAME.check("a/b"), Err("found `/`".into()));
        assert_eq!(NAME.check("a\tb"), Err("found `\\t`".into()));
        assert_eq!(NAME.check(""), Err("found an empty string".into()));
        assert_eq!(NAME.check(&"n".repeat(63)), Ok(()));
        assert_eq!(NAME.check(&"n".repeat(64)), Err("found 64 characters".into()));
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:checkout:live";
        assert_eq!(TARGET.check(arn), Ok(()));
        assert_eq!(NAME.check(arn), Err("found `:`".into()));
        assert_eq!(TARGET.check("a,b"), Err("found `,`".into()));
        assert!(is_env_name("_X1") && !is_env_name("1X") && !is_env_name("A-B"));
    }
}
