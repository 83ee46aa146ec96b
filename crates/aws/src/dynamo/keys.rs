//! Where each item lives: the table's key layout (partition and sort keys, index keys, the
//! attributes that name them). `docs/aws.md` describes the access patterns they serve.

use baton_domain::release::{LockKey, Release, ReleaseId};
use baton_domain::waits::WaitKey;
use chrono::{DateTime, NaiveDate, Utc};

pub(crate) const PK: &str = "PK";
pub(crate) const SK: &str = "SK";
/// Sparse index: releases by service, newest first. Index reads are eventually consistent, so
/// only listings across environments (history for people) read it; decisions read the
/// listing items of one environment, in the base table.
pub const BY_SERVICE_INDEX: &str = "by-service";
/// Sparse index for the Now view, on `GSI2PK`/`GSI2SK` (creation order): an open release under
/// [`OPEN_RELEASES`], a terminal one under its creation day (`CREATED#2026-12-06`). The view
/// reads the open partition and the last day's one or two: a few Queries for any number of
/// services. Each write of a release's item moves it, so a release leaves the open partition
/// in the same write that closes it.
pub const BY_ACTIVITY_INDEX: &str = "by-activity";
pub(super) const OPEN_RELEASES: &str = "OPEN";
/// DynamoDB deletes items whose `ttl` (epoch seconds) has passed: expired locks, and webhook
/// deliveries past their retention (`deliveries.rs`).
pub const TTL_ATTRIBUTE: &str = "ttl";

pub(super) const RELEASE_SK: &str = "RELEASE";
/// Beside a release's record: the catalog entry it was registered with.
pub(super) const ENTRY_SK: &str = "ENTRY";
/// Attributes of a release item naming its listing item.
pub(super) const LISTING_PK: &str = "LPK";
pub(super) const LISTING_SK: &str = "LSK";
pub(super) const EVENT_COUNTER_SK: &str = "EVENT-SEQ";
/// A release item's cancel request, outside its `record` so that one UpdateItem (by
/// `baton cancel --remote`, or by hand: docs/aws.md) sets it; it wins over the record's copy.
pub const CANCEL_ATTRIBUTE: &str = "cancel_requested";

/// Fixed width, so string order is time order.
pub(super) fn sortable_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

pub(super) fn release_pk(id: &ReleaseId) -> String {
    format!("RELEASE#{id}")
}

pub(super) fn idempotency_pk(key: &str) -> String {
    format!("IDEMPOTENCY#{key}")
}

pub(super) fn lock_pk(key: &LockKey) -> String {
    format!("LOCK#{}", key.0)
}

pub(super) fn service_key(service: &str) -> String {
    format!("SERVICE#{service}")
}

pub(super) fn listing_pk(service: &str, environment: &str) -> String {
    format!("RELEASES#{service}#ENV#{environment}")
}

/// A release's partition of [`BY_ACTIVITY_INDEX`].
pub(super) fn activity_key(release: &Release) -> String {
    match release.status.is_terminal() {
        false => OPEN_RELEASES.to_owned(),
        true => created_key(release.created_at.date_naive()),
    }
}

pub(super) fn created_key(day: NaiveDate) -> String {
    format!("CREATED#{day}")
}

/// Newest first within a service: the creation time sorts, the id breaks ties.
pub(super) fn release_order(release: &Release) -> String {
    format!("{}#{}", sortable_time(release.created_at), release.id)
}

pub(super) fn run_pk(run: &str) -> String {
    format!("RUN#{run}")
}

pub(super) fn rollup_pk(service: &str, environment: &str) -> String {
    format!("ROLLUP#{service}#ENV#{environment}")
}

/// A parked wait's item sort key prefix, followed by the release id.
pub(super) const WAIT_SK_PREFIX: &str = "RELEASE#";

/// The partition of the releases parked on `key`.
pub(super) fn wait_pk(key: &WaitKey) -> String {
    format!("WAIT#{key}")
}
