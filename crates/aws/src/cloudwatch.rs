//! A health gate over CloudWatch alarms, metric and composite: named ones and those under a
//! prefix. Any alarm in ALARM makes a sample unhealthy; INSUFFICIENT_DATA counts as the catalog says.

use crate::clients::AwsAccess;
use crate::clients::{AwsClients, region_of};
use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{AlarmType, StateValue};

use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError};
use baton_domain::waits::{WaitKey, WaitKind};
use std::collections::BTreeMap;

/// The key a bake waits on for the alarm `name` of `account` in `region`: what the gate parks
/// on, and what provider-events reads from a "CloudWatch Alarm State Change" (its `account`,
/// `region` and `detail.alarmName`). An alarm's name is unique only within one account and one
/// region, while one EventBridge bus may receive other regions' and accounts' alarm events
/// (cross-region rules, an organisation's central bus): keyed by its name alone, `web-5xx` in
/// eu-west-1 entering ALARM would fail a bake watching `web-5xx` in us-east-1. Not the alarm's
/// ARN, which says the same plus a partition the gate could only learn from a call.
pub fn alarm_key(account: &str, region: &str, name: &str) -> WaitKey {
    WaitKey::new(WaitKind::Bake, CLOUDWATCH.name, format!("{account}:{region}:{name}"))
}

/// How long `saw` may get: it goes into the release record and the team's message.
const SAW_LIMIT: usize = 300;
/// How much of an alarm's state reason `saw` quotes.
const REASON_LIMIT: usize = 100;
/// DescribeAlarms takes at most this many names per call.
const NAMES_PER_CALL: usize = 100;

pub struct CloudWatchGateSampler {
    alarms: Vec<String>,
    prefix: Option<String>,
    parks: bool,
    insufficient_data: InsufficientData,
    access: AwsAccess,
    clients: AwsClients,
}

/// One alarm as the gate weighs it.
#[derive(Debug, Clone, PartialEq)]
struct Alarm {
    name: String,
    state: StateValue,
    reason: String,
}

impl CloudWatchGateSampler {
    pub fn new(spec: &CloudWatchGate, clients: AwsClients) -> CloudWatchGateSampler {
        CloudWatchGateSampler {
            alarms: spec.alarms.clone(),
            prefix: spec.alarm_prefix.clone(),
            parks: spec.parks_bake(),
            insufficient_data: spec.insufficient_data,
            access: spec.access.clone(),
            clients,
        }
    }

    /// Every alarm the gate watches, by name (found by name and by prefix at once counts once).
    async fn alarms(&self, cloudwatch: &aws_sdk_cloudwatch::Client, region: &str) -> Result<BTreeMap<String, Alarm>, ProviderError> {
        let mut found = BTreeMap::new();
        for names in self.alarms.chunks(NAMES_PER_CALL) {
            describe(cloudwatch, Some(names.to_vec()), None, &mut found).await?;
        }
        let missing: Vec<&str> = self.alarms.iter().filter(|name| !found.contains_key(*name)).map(String::as_str).collect();
        if !missing.is_empty() {
            let (noun, names) = if missing.len() == 1 { ("alarm", missing[0].to_string()) } else { ("alarms", missing.join(", ")) };
            return Err(ProviderError::rejected(format!("CloudWatch {noun} {names} not found in {region}")));
        }
        if let Some(prefix) = &self.prefix {
            let mut under_prefix = BTreeMap::new();
            describe(cloudwatch, None, Some(prefix), &mut under_prefix).await?;
            if under_prefix.is_empty() {
                return Err(ProviderError::rejected(format!("no CloudWatch alarm in {region} has a name starting with {prefix:?}")));
            }
            found.extend(under_prefix);
        }
        Ok(found)
    }
}

/// DescribeAlarms by names or by prefix, every page, metric and composite alarms, into `found`.
async fn describe(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    names: Option<Vec<String>>,
    prefix: Option<&str>,
    found: &mut BTreeMap<String, Alarm>,
) -> Result<(), ProviderError> {
    let mut next_token = None;
    loop {
        let page = cloudwatch
            .describe_alarms()
            .set_alarm_names(names.clone())
            .set_alarm_name_prefix(prefix.map(str::to_string))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeAlarms", e).for_provider("CloudWatch alarms"))?;
        let metric = page.metric_alarms().iter().map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
        let composite = page.composite_alarms().iter().map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
        for (name, state, reason) in metric.chain(composite) {
            let Some(name) = name else { continue };
            let alarm = Alarm {
                name: name.to_string(),
                state: state.cloned().unwrap_or(StateValue::InsufficientData),
                reason: reason.unwrap_or_default().to_string(),
            };
            found.insert(alarm.name.clone(), alarm);
        }
        next_token = page.next_token;
        if next_token.is_none() {
            return Ok(());
        }
    }
}

#[async_trait]
impl HealthGate for CloudWatchGateSampler {
    fn describe(&self) -> String {
        let mut watched: Vec<String> = self.alarms.clone();
        watched.extend(self.prefix.iter().map(|p| format!("{p}*")));
        let noun = if watched.len() == 1 && self.prefix.is_none() { "alarm" } else { "alarms" };
        let list = match watched.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => "(none)".into(),
        };
        let place = self.access.region.as_ref().map(|r| format!(" in {r}")).unwrap_or_default();
        format!("CloudWatch {noun} {list}{place}")
    }

    async fn sample(&self, _request: &HealthRequest) -> Result<GateReading, ProviderError> {
        if self.alarms.is_empty() && self.prefix.is_none() {
            return Err(ProviderError::rejected("the CloudWatch gate names no alarms and no alarm prefix"));
        }
        let config = self.clients.config_for(&self.access).await?;
        let region = region_of(&config);
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&config);
        let alarms: Vec<Alarm> = self.alarms(&cloudwatch, &region).await?.into_values().collect();
        Ok(reading(&alarms, self.insufficient_data))
    }

    /// Each named alarm's key in the gate's region (its own, else the process's) and account
    /// ([`AwsClients::account_of`]). A prefix names no alarm: what falls under it may change
    /// during the bake, so such a gate samples.
    async fn bake_keys(&self) -> Result<Option<Vec<WaitKey>>, ProviderError> {
        if !self.parks {
            return Ok(None);
        }
        let region = region_of(&self.clients.config_for(&self.access).await?);
        let account = self.clients.account_of(&self.access).await?;
        Ok(Some(self.alarms.iter().map(|name| alarm_key(&account, &region, name)).collect()))
    }
}

/// Whether an alarm makes the sample unhealthy.
fn is_bad(alarm: &Alarm, insufficient_data: InsufficientData) -> bool {
    match alarm.state {
        StateValue::Alarm => true,
        StateValue::InsufficientData => insufficient_data == InsufficientData::Unhealthy,
        _ => false,
    }
}

fn reading(alarms: &[Alarm], insufficient_data: InsufficientData) -> GateReading {
    let saw = saw(alarms, insufficient_data);
    if alarms.iter().any(|a| is_bad(a, insufficient_data)) { GateReading::Unhealthy { saw } } else { GateReading::Healthy { saw } }
}

/// The alarms and their states, the bad ones first (ALARM with its reason), at most
/// [`SAW_LIMIT`] characters: "web-5xx ALARM (Threshold Crossed: ...), web-latency OK and 3 more".
fn saw(alarms: &[Alarm], insufficient_data: InsufficientData) -> String {
    let mut ordered: Vec<&Alarm> = alarms.iter().collect();
    // Bad first; then ALARM, INSUFFICIENT_DATA, OK; then by name.
    let rank = |state: &StateValue| match state {
        StateValue::Alarm => 0,
        StateValue::InsufficientData => 1,
        _ => 2,
    };
    ordered.sort_by_key(|a| (!is_bad(a, insufficient_data), rank(&a.state), a.name.as_str()));
    let entries: Vec<String> = ordered
        .iter()
        .map(|a| match a.state {
            StateValue::Alarm if !a.reason.is_empty() => format!("{} ALARM ({})", a.name, shorten(&a.reason, REASON_LIMIT)),
            _ => format!("{} {}", a.name, a.state.as_str()),
        })
        .collect();
    if entries.is_empty() {
        return "no alarms".into();
    }
    let mut text = String::new();
    for (shown, entry) in entries.iter().enumerate() {
        let left = entries.len() - shown;
        let separator = if shown == 0 { "" } else { ", " };
        // Room for this entry and, unless it is the last, the "and N more" after it.
        let tail = if left > 1 { format!(" and {} more", left - 1).len() } else { 0 };
        if shown > 0 && text.len() + separator.len() + entry.len() + tail > SAW_LIMIT {
            text.push_str(&format!(" and {left} more"));
            return text;
        }
        text.push_str(separator);
        text.push_str(entry);
    }
    shorten(&text, SAW_LIMIT)
}

/// `text` cut to at most `limit` characters, ending in "..." when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let kept: String = text.chars().take(limit.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

// ------------------------------------------------------------------ catalog block

use crate::clients::{REGION, ROLE_ARN};
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CloudWatchGate {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_prefix: Option<String>,
    /// How an alarm in INSUFFICIENT_DATA counts.
    #[serde(default)]
    pub insufficient_data: InsufficientData,
    #[serde(flatten)]
    pub access: AwsAccess,
}

impl CloudWatchGate {
    /// Whether a bake watched by this gate can park on its alarms' events: it names every alarm
    /// (a prefix's alarms may change during the bake). Read from the block alone, no call made.
    pub fn parks_bake(&self) -> bool {
        self.alarm_prefix.is_none() && !self.alarms.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InsufficientData {
    #[default]
    Healthy,
    Unhealthy,
}

const GATE_CLOUDWATCH: &[Field] = &[
    field("alarms", Kind::TextList, "Alarm names (metric or composite alarms)."),
    field("alarm-prefix", Kind::Text, "Every alarm whose name starts with this."),
    field("insufficient-data", Kind::Enum(&["healthy", "unhealthy"]), "How an alarm in INSUFFICIENT_DATA counts; `healthy` by default."),
    REGION,
    ROLE_ARN,
];

pub const CLOUDWATCH: ProviderShape = ProviderShape {
    slot: Slot::Gate,
    name: "cloudwatch",
    doc: "CloudWatch alarms: any in ALARM is unhealthy.",
    fields: GATE_CLOUDWATCH,
    at_least_one: Some((&["alarms", "alarm-prefix"], "the gate must name the alarms it watches")),
    local_only: false,
    run_word: None,
    through_model: through_model::<CloudWatchGate>,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, state: StateValue, reason: &str) -> Alarm {
        Alarm { name: name.into(), state, reason: reason.into() }
    }

    fn gate(alarms: &[&str], prefix: Option<&str>, region: Option<&str>) -> CloudWatchGateSampler {
        gate_as(alarms, prefix, AwsAccess { region: region.map(str::to_string), role_arn: None }, AwsClients::new())
    }

    fn gate_as(alarms: &[&str], prefix: Option<&str>, access: AwsAccess, clients: AwsClients) -> CloudWatchGateSampler {
        CloudWatchGateSampler::new(
            &CloudWatchGate {
                alarms: alarms.iter().map(|a| a.to_string()).collect(),
                alarm_prefix: prefix.map(str::to_string),
                insufficient_data: InsufficientData::Healthy,
                access,
            },
            clients,
        )
    }

    #[tokio::test]
    async fn named_alarms_park_on_keys_of_their_account_and_region_and_a_prefix_samples() {
        let role = |region: Option<&str>| AwsAccess {
            region: region.map(str::to_string),
            role_arn: Some("arn:aws:iam::210987654321:role/reader".into()),
        };
        let clients = AwsClients::with_base(crate::clients::tests::base().await);
        let keys = |alarms: &'static [&'static str], prefix: Option<&'static str>, access: AwsAccess| {
            let gate = gate_as(alarms, prefix, access, clients.clone());
            async move { gate.bake_keys().await.unwrap().map(|keys| keys.iter().map(ToString::to_string).collect::<Vec<_>>()) }
        };
        assert_eq!(
            keys(&["web-5xx", "web-p99"], None, role(Some("eu-west-1"))).await.unwrap(),
            ["bake:cloudwatch:210987654321:eu-west-1:web-5xx", "bake:cloudwatch:210987654321:eu-west-1:web-p99"]
        );
        assert_eq!(
            keys(&["web-5xx"], None, role(None)).await.unwrap(),
            ["bake:cloudwatch:210987654321:us-east-1:web-5xx"],
            "the process's region"
        );
        assert_eq!(keys(&["web-5xx"], Some("web-"), role(None)).await, None, "a prefix names no alarm");
        assert_eq!(keys(&[], Some("web-"), role(None)).await, None);
    }

    #[test]
    fn describe_lists_names_and_the_prefix() {
        assert_eq!(gate(&["web-5xx", "web-latency"], Some("web-"), None).describe(), "CloudWatch alarms web-5xx, web-latency and web-*");
        assert_eq!(gate(&["web-5xx"], None, None).describe(), "CloudWatch alarm web-5xx");
        assert_eq!(gate(&[], Some("web-"), Some("eu-west-1")).describe(), "CloudWatch alarms web-* in eu-west-1");
    }

    #[test]
    fn any_alarm_in_alarm_is_unhealthy_and_comes_first_with_its_reason() {
        let alarms = [
            alarm("web-latency", StateValue::Ok, "fine"),
            alarm("web-5xx", StateValue::Alarm, "Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0)."),
            alarm("web-cpu", StateValue::InsufficientData, "no data"),
        ];
        let expected = "web-5xx ALARM (Threshold Crossed: 1 datapoint [12.0] was greater than the threshold (5.0).), \
                        web-cpu INSUFFICIENT_DATA, web-latency OK";
        assert_eq!(reading(&alarms, InsufficientData::Healthy), GateReading::Unhealthy { saw: expected.into() });
    }

    #[test]
    fn insufficient_data_counts_as_the_catalog_says() {
        let alarms = [alarm("web-latency", StateValue::Ok, ""), alarm("web-cpu", StateValue::InsufficientData, "")];
        let saw = "web-cpu INSUFFICIENT_DATA, web-latency OK".to_string();
        assert_eq!(reading(&alarms, InsufficientData::Healthy), GateReading::Healthy { saw: saw.clone() });
        assert_eq!(reading(&alarms, InsufficientData::Unhealthy), GateReading::Unhealthy { saw });
    }

    #[test]
    fn saw_is_bounded_and_says_how_many_it_left_out() {
        let mut alarms: Vec<Alarm> = (0..40).map(|i| alarm(&format!("web-alarm-{i:02}"), StateValue::Ok, "")).collect();
        alarms.push(alarm("web-broken", StateValue::Alarm, &"x".repeat(500)));
        let text = saw(&alarms, InsufficientData::Healthy);
        assert!(text.len() <= SAW_LIMIT, "{} chars: {text}", text.len());
        assert!(text.starts_with("web-broken ALARM (xxx"), "{text}");
        assert!(text.contains("...)"), "the reason is cut: {text}");
        let shown = text.matches(" OK").count();
        assert!(text.ends_with(&format!(" and {} more", 40 - shown)), "{text}");

        let long = [alarm(&"n".repeat(400), StateValue::Ok, "")];
        assert!(saw(&long, InsufficientData::Healthy).chars().count() <= SAW_LIMIT);
        assert_eq!(saw(&[], InsufficientData::Healthy), "no alarms");
    }
}
