//! Items and the models they hold: a release's item (its JSON record plus the attributes its
//! keys and conditions read), a lock's, a run owner's, a day's rollup counters.

use super::keys::*;
use aws_sdk_dynamodb::types::AttributeValue;
use baton_domain::ports::{RunOwner, StoreError};
use baton_domain::redact::scrub_owned;
use baton_domain::release::{LockInfo, Release, ReleaseId, Rollup, RollupKey};
use baton_domain::sketch::Sketch;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The owner an item of a run names; none when the run ended (or the item is absent: empty).
pub(super) fn parse_run_owner(item: &Item) -> Result<Option<RunOwner>, StoreError> {
    let Ok(owner) = string_attr(item, "run_owner") else { return Ok(None) };
    let beat_us = number_attr(item, "beat_us")?;
    let beat_at = i64::try_from(beat_us)
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| StoreError::corrupt(format!("run attribute 'beat_us' = {beat_us} is not a representable time")))?;
    let cancel = string_attr(item, "cancel_reason").ok().map(str::to_owned);
    Ok(Some(RunOwner { owner: owner.to_owned(), fence: number_attr(item, "fence")?, beat_at, cancel }))
}

pub(super) const ROLLUP_FIELDS: [&str; 9] = [
    "deployments",
    "failed_deployments",
    "rollbacks",
    "lead_time_seconds_total",
    "lead_time_samples",
    "restore_seconds_total",
    "restores",
    "redeployments",
    "lead_time_fallbacks",
];

/// Counters added after the first release of the table: missing on older items, read as 0.
pub(super) const LATER_ROLLUP_FIELDS: [&str; 2] = ["redeployments", "lead_time_fallbacks"];

/// A rollup's sketches, each bucket an attribute `<prefix><bucket>` (a counter like the others).
pub(super) fn sketch_attributes(rollup: &Rollup) -> [(&'static str, &Sketch); 2] {
    [("lead#", &rollup.lead_times), ("restore#", &rollup.restore_times)]
}

/// The `ADD` of a delta to a day's counters, for UpdateItem alone or inside a transaction.
pub(super) struct RollupAdd {
    pub(super) key: Item,
    pub(super) expression: String,
    pub(super) names: Option<HashMap<String, String>>,
    pub(super) values: Item,
}

impl RollupAdd {
    pub(super) fn new(key: &RollupKey, delta: &Rollup) -> RollupAdd {
        let mut adds: Vec<String> = ROLLUP_FIELDS.iter().map(|field| format!("{field} :{field}")).collect();
        let mut values: Item =
            ROLLUP_FIELDS.iter().zip(rollup_values(delta)).map(|(field, value)| (format!(":{field}"), n(value))).collect();
        // Bucket names hold '#' and '-', so they go through placeholders.
        let mut names = HashMap::new();
        let buckets = sketch_attributes(delta).into_iter().flat_map(|(prefix, sketch)| sketch.buckets().map(move |(b, c)| (prefix, b, c)));
        for (i, (prefix, bucket, count)) in buckets.enumerate() {
            adds.push(format!("#b{i} :b{i}"));
            names.insert(format!("#b{i}"), format!("{prefix}{bucket}"));
            values.insert(format!(":b{i}"), n(count));
        }
        RollupAdd {
            key: HashMap::from([
                (PK.to_string(), s(rollup_pk(&key.service, &key.environment))),
                (SK.to_string(), s(format!("DAY#{}", key.day))),
            ]),
            expression: format!("ADD {}", adds.join(", ")),
            names: (!names.is_empty()).then_some(names),
            values,
        }
    }
}

pub(super) fn rollup_values(r: &Rollup) -> [u64; 9] {
    [
        r.deployments,
        r.failed_deployments,
        r.rollbacks,
        r.lead_time_seconds_total,
        r.lead_time_samples,
        r.restore_seconds_total,
        r.restores,
        r.redeployments,
        r.lead_time_fallbacks,
    ]
}

pub(super) fn parse_rollup(item: &Item) -> Result<(NaiveDate, Rollup), StoreError> {
    let sk = string_attr(item, SK)?;
    let day = sk
        .strip_prefix("DAY#")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| StoreError::corrupt(format!("rollup sort key '{sk}' is not DAY#YYYY-MM-DD")))?;
    let mut v = [0u64; 9];
    for (slot, field) in v.iter_mut().zip(ROLLUP_FIELDS) {
        *slot = match item.get(field) {
            None if LATER_ROLLUP_FIELDS.contains(&field) => 0,
            _ => number_attr(item, field)?,
        };
    }
    let [
        deployments,
        failed_deployments,
        rollbacks,
        lead_time_seconds_total,
        lead_time_samples,
        restore_seconds_total,
        restores,
        redeployments,
        lead_time_fallbacks,
    ] = v;
    let mut rollup = Rollup {
        deployments,
        failed_deployments,
        rollbacks,
        lead_time_seconds_total,
        lead_time_samples,
        restore_seconds_total,
        restores,
        redeployments,
        lead_time_fallbacks,
        ..Rollup::default()
    };
    for (name, _) in item.iter().filter(|(name, _)| name.contains('#')) {
        let (sketch, bucket) = match name.split_once('#') {
            Some(("lead", bucket)) => (&mut rollup.lead_times, bucket),
            Some(("restore", bucket)) => (&mut rollup.restore_times, bucket),
            _ => continue,
        };
        let bucket = bucket.parse().map_err(|_| StoreError::corrupt(format!("rollup {sk}: attribute '{name}' names no sketch bucket")))?;
        sketch.add_count(bucket, number_attr(item, name)?);
    }
    Ok((day, rollup))
}

/// The item of `release` stored at `version`.
pub(super) fn release_item(release: &Release, version: u64) -> Result<Item, StoreError> {
    let record = serde_json::to_string(&Release { version, ..release.clone() })
        .map_err(|e| StoreError::corrupt(format!("release {}: cannot be encoded as JSON", release.id)).caused_by(e))?;
    // Records outlive the process and are shown to anyone who can read the table.
    let record = scrub_owned(record);
    let order = release_order(release);
    let mut item = HashMap::from([
        (PK.to_string(), s(release_pk(&release.id))),
        (SK.to_string(), s(RELEASE_SK)),
        ("GSI1PK".to_string(), s(service_key(&release.service))),
        ("GSI1SK".to_string(), s(order.clone())),
        ("GSI2PK".to_string(), s(activity_key(release))),
        ("GSI2SK".to_string(), s(order.clone())),
        // Where list_releases finds the record: its writes check that it has not moved.
        (LISTING_PK.to_string(), s(listing_pk(&release.service, &release.environment))),
        (LISTING_SK.to_string(), s(order)),
        // Plain attributes for people reading the table in the console; `record` is the source of truth.
        ("service".to_string(), s(&release.service)),
        ("environment".to_string(), s(&release.environment)),
        ("status".to_string(), s(release.status.as_str())),
        // Mirrors the record's version, for the condition of the next write.
        ("version".to_string(), n(version)),
        ("record".to_string(), s(record)),
    ]);
    if let Some(reason) = &release.cancel_requested {
        item.insert(CANCEL_ATTRIBUTE.to_string(), s(scrub_owned(reason.clone())));
    }
    Ok(item)
}

pub(super) fn parse_release(item: &Item) -> Result<Release, StoreError> {
    let mut release: Release = parse_record(item, "release")?;
    if item.contains_key(CANCEL_ATTRIBUTE) {
        release.cancel_requested = Some(string_attr(item, CANCEL_ATTRIBUTE)?.to_owned());
    }
    Ok(release)
}

pub(super) fn parse_record<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> Result<T, StoreError> {
    let text = string_attr(item, "record")?;
    serde_json::from_str(text).map_err(|e| {
        let pk = item.get(PK).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("?");
        StoreError::corrupt(format!("{what} item {pk}: attribute 'record' is not a valid {what}")).caused_by(e)
    })
}

pub(super) fn parse_lock(item: &Item) -> Result<LockInfo, StoreError> {
    let expires_at = string_attr(item, "expires_at")?;
    Ok(LockInfo {
        holder: ReleaseId(string_attr(item, "holder")?.to_string()),
        expires_at: DateTime::parse_from_rfc3339(expires_at)
            .map_err(|e| StoreError::corrupt(format!("lock attribute 'expires_at' = '{expires_at}'")).caused_by(e))?
            .with_timezone(&Utc),
    })
}

pub(super) fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        Some(_) => Err(StoreError::corrupt(format!("attribute '{name}' is not a string"))),
        None => Err(StoreError::corrupt(format!("attribute '{name}' is missing"))),
    }
}

pub(super) fn number_attr(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => {
            value.parse().map_err(|_| StoreError::corrupt(format!("attribute '{name}' = {value} is not a whole number >= 0")))
        }
        Some(_) => Err(StoreError::corrupt(format!("attribute '{name}' is not a number"))),
        None => Err(StoreError::corrupt(format!("attribute '{name}' is missing"))),
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn n_i64(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
