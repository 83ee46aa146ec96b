//! [`ReleaseStore`] on one DynamoDB table. Keys and access patterns are documented in
//! `docs/aws.md`; every request path is a GetItem, PutItem, UpdateItem, DeleteItem, Query
//! or TransactWriteItems: never a Scan.

mod items;
mod keys;

pub(crate) use items::{n_i64, s};
pub use keys::{BY_ACTIVITY_INDEX, BY_SERVICE_INDEX, CANCEL_ATTRIBUTE, TTL_ATTRIBUTE};
pub(crate) use keys::{PK, SK};

use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{
    CancellationReason, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use baton_domain::catalog::ServiceEntry;
use baton_domain::ports::{Beat, Claim, Created, LockOutcome, ReleaseStore, RunOwner, StoreError, WaitRegistry};
use baton_domain::redact::scrub_owned;
use baton_domain::release::{LockInfo, LockKey, Release, ReleaseId, ReleaseStatus, Rollup, RollupKey, StageEvent, TaskToken};
use baton_domain::retry::{Backoff, retry};
use baton_domain::waits::{Parked, WaitKey};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use items::*;
use keys::*;
use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

/// A transaction that collides with a concurrent one on the same idempotency key is
/// cancelled with `TransactionConflict`; retrying (with a growing pause) settles which one won.
const TRANSACTION_ATTEMPTS: u32 = 8;
const TRANSACTION_BACKOFF: Duration = Duration::from_millis(20);
const TRANSACTION_BACKOFF_CAP: Duration = Duration::from_millis(320);

/// The Baton release table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore { client, table: table.into() }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// A service's releases newest first: created at `since` or later when given, at most `limit`
    /// when given. The by-service index and the listing items both sort by [`release_order`],
    /// creation time first, so `since` bounds the key range rather than filtering read items.
    async fn list(
        &self,
        service: &str,
        environment: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: Option<usize>,
    ) -> Result<Vec<Release>, StoreError> {
        let newest_first = |query: QueryFluentBuilder, (pk_attr, sk_attr): (&str, &str), pk: String| {
            let query = query
                .expression_attribute_values(":pk", s(pk))
                .scan_index_forward(false)
                .set_limit(limit.map(|limit| i32::try_from(limit).unwrap_or(i32::MAX)));
            match since {
                Some(since) => query
                    .key_condition_expression(format!("{pk_attr} = :pk AND {sk_attr} >= :since"))
                    .expression_attribute_values(":since", s(sortable_time(since))),
                None => query.key_condition_expression(format!("{pk_attr} = :pk")),
            }
        };
        let Some(environment) = environment else {
            let query = newest_first(self.client.query().index_name(BY_SERVICE_INDEX), ("GSI1PK", "GSI1SK"), service_key(service));
            return self.query(query, limit).await?.iter().map(parse_release).collect();
        };
        // The listing items say which releases, in order; the records are read consistently too,
        // so a status written a moment ago (the release that just succeeded) is seen.
        let query = newest_first(self.client.query().consistent_read(true), (PK, SK), listing_pk(service, environment));
        let listed = self.query(query, limit).await?;
        let reads = listed.iter().map(|listing| async move {
            let id = string_attr(listing, "release_id")?;
            match self.get_item("GetItem", release_pk(&ReleaseId(id.to_string())), RELEASE_SK).await? {
                Some(item) => parse_release(&item),
                None => Err(StoreError::corrupt(format!(
                    "listing {} names release {id}, which has no record",
                    listing_pk(service, environment)
                ))),
            }
        });
        futures_util::future::try_join_all(reads).await
    }

    /// Runs `query` (on this table) through all its pages, or until `limit` items.
    async fn query(&self, query: QueryFluentBuilder, limit: Option<usize>) -> Result<Vec<Item>, StoreError> {
        let mut pages = query.table_name(&self.table).into_paginator().items().send();
        let mut items = Vec::new();
        while limit.is_none_or(|limit| items.len() < limit) {
            match pages.next().await {
                Some(item) => items.push(item.map_err(|e| store_error("Query", e))?),
                None => break,
            }
        }
        Ok(items)
    }

    async fn get_item(&self, operation: &'static str, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(operation, e))?;
        Ok(output.item)
    }

    /// One TransactWriteItems attempt: `Ok(None)` when the transaction lost a race and should be retried.
    async fn try_create_release(&self, release: &Release, idempotency_key: &str) -> Result<Option<Created>, StoreError> {
        let idempotency = Put::builder()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                (PK.to_string(), s(idempotency_pk(idempotency_key))),
                (SK.to_string(), s("IDEMPOTENCY")),
                ("release_id".to_string(), s(release.id.as_str())),
            ])))
            .condition_expression("attribute_not_exists(PK)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(unbuildable)?;
        let record = Put::builder()
            .table_name(&self.table)
            .set_item(Some(release_item(release, release.version)?))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(unbuildable)?;
        let items = vec![
            TransactWriteItem::builder().put(idempotency).build(),
            TransactWriteItem::builder().put(record).build(),
            TransactWriteItem::builder().put(self.listing_put(release)?).build(),
        ];
        let Err(reasons) = self.transact(items).await? else {
            return Ok(Some(Created::New(release.id.clone())));
        };
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        match (code(0), code(1)) {
            ("ConditionalCheckFailed", _) => {
                let existing = match reasons[0].item() {
                    Some(item) => Some(item.clone()),
                    None => self.get_item("GetItem", idempotency_pk(idempotency_key), "IDEMPOTENCY").await?,
                };
                let item = existing
                    .ok_or_else(|| StoreError::unavailable(format!("idempotency key '{idempotency_key}' vanished while being read")))?;
                Ok(Some(Created::Existing(ReleaseId(string_attr(&item, "release_id")?.to_string()))))
            }
            (_, "ConditionalCheckFailed") => {
                Err(StoreError::conflict(format!("release {} already exists under another idempotency key", release.id)))
            }
            ("TransactionConflict", _) | (_, "TransactionConflict") => Ok(None),
            _ => Err(cancelled(&reasons)),
        }
    }

    /// The listing item of `release`: one per release under its service and environment, keyed
    /// by [`release_order`], so a consistent Query of the base table lists them newest first.
    fn listing_put(&self, release: &Release) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.table)
            .item(PK, s(listing_pk(&release.service, &release.environment)))
            .item(SK, s(release_order(release)))
            .item("release_id", s(release.id.as_str()))
            .build()
            .map_err(unbuildable)
    }

    /// Writes `release` at the next version if the stored record is still at `release.version`,
    /// with `also` (a close's rollup and unlock) in the same transaction.
    async fn replace(&self, release: &Release, also: Vec<TransactWriteItem>) -> Result<u64, StoreError> {
        let version = next_version(release)?;
        let record = |condition: String, listing: Option<(String, String)>| {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(release_item(release, version)?))
                .condition_expression(condition)
                .expression_attribute_values(":read", n(release.version))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            let put = match listing {
                Some((pk, sk)) => put.expression_attribute_values(":lpk", s(pk)).expression_attribute_values(":lsk", s(sk)),
                None => put,
            };
            put.build().map_err(unbuildable)
        };
        // Usually the record stays where list_releases finds it: one conditional write.
        let stays = record(
            format!("{} AND {LISTING_PK} = :lpk AND {LISTING_SK} = :lsk", write_condition(release)),
            Some((listing_pk(&release.service, &release.environment), release_order(release))),
        )?;
        let mut items = vec![TransactWriteItem::builder().put(stays).build()];
        items.extend(also.clone());
        let Err(reasons) = self.transact(items).await? else {
            return Ok(version);
        };
        let old = match reasons.first().and_then(|r| r.code()) {
            Some("ConditionalCheckFailed") => match reasons[0].item() {
                Some(item) => Some(item.clone()),
                None => self.get_item("GetItem", release_pk(&release.id), RELEASE_SK).await?,
            },
            _ => return Err(write_cancelled(release, &reasons)),
        };
        let old = match old {
            Some(old) if stored_version(&old) == release.version && !drops_cancel(release, &old) => old,
            other => return Err(version_conflict(release, other.as_ref())),
        };
        // The version holds, so the listing moved (a new environment or creation time), or the
        // record predates listings: move the listing item with the write.
        let mut items = vec![
            TransactWriteItem::builder().put(record(write_condition(release), None)?).build(),
            TransactWriteItem::builder().put(self.listing_put(release)?).build(),
        ];
        if let (Ok(pk), Ok(sk)) = (string_attr(&old, LISTING_PK), string_attr(&old, LISTING_SK)) {
            let delete = Delete::builder().table_name(&self.table).key(PK, s(pk)).key(SK, s(sk)).build().map_err(unbuildable)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        items.extend(also);
        match self.transact(items).await? {
            Ok(()) => Ok(version),
            Err(reasons) => Err(write_cancelled(release, &reasons)),
        }
    }

    /// One TransactWriteItems: `Ok(Err(reasons))` when DynamoDB cancelled it, one reason per item.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Result<(), Vec<CancellationReason>>, StoreError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Ok(())),
            Err(err) => match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(canceled)) => Ok(Err(canceled.cancellation_reasons().to_vec())),
                _ => Err(store_error("TransactWriteItems", err)),
            },
        }
    }
}

impl DynamoStore {
    /// An UpdateItem of `run`'s owner item that answers, when its condition fails, with the item as it was.
    fn update_run(&self, run: &str, expression: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(run_pk(run)))
            .key(SK, s("RUN"))
            .update_expression(expression)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

/// An UpdateItem's answer: `Ok(Ok(new item))` when it applied, `Ok(Err(old item))` when its
/// condition failed.
#[allow(clippy::type_complexity)]
fn conditional<R: Debug>(
    result: Result<
        aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
        SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
    >,
) -> Result<Result<Option<Item>, Option<Item>>, StoreError> {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
    match result {
        Ok(output) => Ok(Ok(output.attributes)),
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(Err(failed.item().cloned())),
            _ => Err(store_error("UpdateItem", err)),
        },
    }
}

/// A request this crate built wrongly (a missing required field): a bug, not an outage.
fn unbuildable(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::refused("a DynamoDB request could not be built").caused_by(err)
}

/// A cancelled transaction none of whose reasons the caller handles: throttled or colliding
/// with another transaction is worth retrying, anything else (a validation error) is not.
fn cancelled(reasons: &[CancellationReason]) -> StoreError {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    let transient = ["ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded", "TransactionConflict"];
    let message = format!("TransactWriteItems cancelled (reasons: {})", codes.join(", "));
    if codes.iter().any(|code| transient.contains(code)) { StoreError::unavailable(message) } else { StoreError::refused(message) }
}

/// Parked waits, one item per key and release (`WAIT#<key>`, `RELEASE#<id>`): a Query reads a
/// key's waits, and each is taken by the DeleteItem that returns it, so of two takers of one
/// key each wait goes to one (the delete is conditional on the token read). The table's TTL removes those no event came for.
#[async_trait]
impl WaitRegistry for DynamoStore {
    async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(wait_pk(&wait.key)))
            .item(SK, s(format!("{WAIT_SK_PREFIX}{}", wait.release)))
            .item("release", s(wait.release.as_str()))
            .item("token", s(wait.token.expose()))
            .item("until_us", n_i64(wait.until.timestamp_micros()))
            // Rounded up, and a day later: a wait is never deleted before its task times out.
            .item(TTL_ATTRIBUTE, n_i64(wait.until.timestamp() + 86_400))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
        let query = self
            .client
            .query()
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", s(wait_pk(key)))
            .expression_attribute_values(":prefix", s(WAIT_SK_PREFIX))
            .consistent_read(true);
        let mut taken = Vec::new();
        for item in self.query(query, None).await? {
            // Conditional on the token read: of two takers (or a take and a new park of the same
            // release) exactly one deletes the wait it read; the other is told so and skips it.
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(PK, s(wait_pk(key)))
                .key(SK, s(string_attr(&item, SK)?))
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", s(string_attr(&item, "token")?))
                .return_values(ReturnValue::AllOld)
                .send()
                .await;
            let deleted = match deleted {
                Ok(deleted) => deleted,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => continue,
                Err(err) => return Err(store_error("DeleteItem", err)),
            };
            let Some(old) = deleted.attributes else { continue };
            let until_us = i64::try_from(number_attr(&old, "until_us")?).unwrap_or(i64::MAX);
            let until = DateTime::from_timestamp_micros(until_us)
                .ok_or_else(|| StoreError::corrupt(format!("wait on {key}: until {until_us} is out of range")))?;
            if until > now {
                let release = ReleaseId(string_attr(&old, "release")?.to_owned());
                taken.push(Parked { key: key.clone(), release, token: TaskToken(string_attr(&old, "token")?.to_owned()), until });
            }
        }
        Ok(taken)
    }
}

#[async_trait]
impl ReleaseStore for DynamoStore {
    async fn create_release(&self, release: &Release, idempotency_key: &str) -> Result<Created, StoreError> {
        let backoff = Backoff::doubling(TRANSACTION_BACKOFF, TRANSACTION_BACKOFF_CAP).attempts(TRANSACTION_ATTEMPTS).jittered();
        let collided =
            || StoreError::conflict(format!("TransactWriteItems collided with a concurrent write for idempotency key '{idempotency_key}'"));
        let attempt = |_| async { self.try_create_release(release, idempotency_key).await?.ok_or_else(collided) };
        retry(backoff, attempt, |failed: &StoreError| matches!(failed, StoreError::Conflict { .. })).await.map_err(|failed| match failed {
            StoreError::Conflict { .. } => StoreError::unavailable(format!(
                "TransactWriteItems kept conflicting with concurrent writes for idempotency key '{idempotency_key}' ({TRANSACTION_ATTEMPTS} attempts)"
            )),
            other => other,
        })
    }

    async fn get_release(&self, id: &ReleaseId) -> Result<Option<Release>, StoreError> {
        match self.get_item("GetItem", release_pk(id), RELEASE_SK).await? {
            Some(item) => Ok(Some(parse_release(&item)?)),
            None => Ok(None),
        }
    }

    async fn keep_entry(&self, id: &ReleaseId, entry: &ServiceEntry) -> Result<(), StoreError> {
        // Beside the record, not in it: the record is rewritten at every step and listed 50 at a
        // time, the entry written once and read by one task at a time. Kept as the catalog holds
        // it, unscrubbed: it is configuration the tasks act on.
        let entry = serde_json::to_string(entry)
            .map_err(|e| StoreError::corrupt(format!("release {id}: the catalog entry cannot be encoded as JSON")).caused_by(e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(release_pk(id)))
            .item(SK, s(ENTRY_SK))
            .item("entry", s(entry))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if matches!(err.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => Ok(()),
            Err(err) => Err(store_error("PutItem", err)),
        }
    }

    async fn kept_entry(&self, id: &ReleaseId) -> Result<Option<ServiceEntry>, StoreError> {
        let Some(item) = self.get_item("GetItem", release_pk(id), ENTRY_SK).await? else { return Ok(None) };
        let entry = serde_json::from_str(string_attr(&item, "entry")?)
            .map_err(|e| StoreError::corrupt(format!("release {id}: the kept catalog entry is not readable")).caused_by(e))?;
        Ok(Some(entry))
    }

    async fn put_release(&self, release: &Release) -> Result<u64, StoreError> {
        self.replace(release, Vec::new()).await
    }

    async fn request_cancel(&self, id: &ReleaseId, reason: &str) -> Result<bool, StoreError> {
        // Only an open release takes a request; the first reason stays.
        let open = [ReleaseStatus::Queued, ReleaseStatus::Running, ReleaseStatus::Interrupted];
        debug_assert!(open.iter().all(|status| !status.is_terminal()));
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(release_pk(id)))
            .key(SK, s(RELEASE_SK))
            .update_expression(format!("SET {CANCEL_ATTRIBUTE} = if_not_exists({CANCEL_ATTRIBUTE}, :reason)"))
            .condition_expression("attribute_exists(PK) AND #status IN (:open0, :open1, :open2)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":reason", s(scrub_owned(reason.to_owned())));
        for (i, status) in open.iter().enumerate() {
            request = request.expression_attribute_values(format!(":open{i}"), s(status.as_str()));
        }
        Ok(conditional(request.send().await)?.is_ok())
    }

    async fn list_releases(&self, service: &str, environment: Option<&str>, limit: usize) -> Result<Vec<Release>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.list(service, environment, None, Some(limit)).await
    }

    async fn releases_since(&self, service: &str, environment: Option<&str>, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        self.list(service, environment, Some(since), None).await
    }

    async fn open_or_created_since(&self, since: DateTime<Utc>) -> Result<Vec<Release>, StoreError> {
        let by_activity = |pk: String| {
            self.client
                .query()
                .index_name(BY_ACTIVITY_INDEX)
                .key_condition_expression("GSI2PK = :pk")
                .expression_attribute_values(":pk", s(pk))
        };
        let mut items = self.query(by_activity(OPEN_RELEASES.to_owned()), None).await?;
        let mut day = since.date_naive();
        while day <= Utc::now().date_naive() {
            let query = by_activity(created_key(day))
                .key_condition_expression("GSI2PK = :pk AND GSI2SK >= :since")
                .expression_attribute_values(":since", s(sortable_time(since)));
            items.extend(self.query(query, None).await?);
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
        items.iter().map(parse_release).collect()
    }

    async fn append_event(&self, event: &StageEvent) -> Result<(), StoreError> {
        // A per-release counter keeps events that share a timestamp in the order they were appended.
        let counter = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(release_pk(&event.release_id)))
            .key(SK, s(EVENT_COUNTER_SK))
            .update_expression("ADD seq :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        let seq = counter
            .attributes()
            .map(|item| number_attr(item, "seq"))
            .transpose()?
            .ok_or_else(|| StoreError::corrupt("event counter update returned no sequence number"))?;
        let record = serde_json::to_string(event).map_err(|e| StoreError::corrupt("an event cannot be encoded as JSON").caused_by(e))?;
        let record = scrub_owned(record);
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(release_pk(&event.release_id)))
            .item(SK, s(format!("EVENT#{}#{seq:012}", sortable_time(event.at))))
            .item("record", s(record))
            .send()
            .await
            .map_err(|e| store_error("PutItem", e))?;
        Ok(())
    }

    async fn events(&self, id: &ReleaseId) -> Result<Vec<StageEvent>, StoreError> {
        let query = self
            .client
            .query()
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", s(release_pk(id)))
            .expression_attribute_values(":prefix", s("EVENT#"))
            .consistent_read(true);
        self.query(query, None).await?.iter().map(|item| parse_record(item, "stage event")).collect()
    }

    async fn try_lock(&self, key: &LockKey, holder: &ReleaseId, now: DateTime<Utc>, lease: Duration) -> Result<LockOutcome, StoreError> {
        let lease = chrono::Duration::from_std(lease).map_err(|_| StoreError::conflict(format!("lock lease {lease:?} is too long")))?;
        let expires_at = now + lease;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(lock_pk(key)))
            .item(SK, s("LOCK"))
            .item("holder", s(holder.as_str()))
            .item("expires_at", s(expires_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
            .item("expires_us", n_i64(expires_at.timestamp_micros()))
            // Seconds since the epoch, rounded up: TTL must never delete a lock before its lease ends.
            .item(TTL_ATTRIBUTE, n_i64(expires_at.timestamp() + 1))
            .condition_expression("attribute_not_exists(PK) OR holder = :holder OR expires_us <= :now")
            .expression_attribute_values(":holder", s(holder.as_str()))
            .expression_attribute_values(":now", n_i64(now.timestamp_micros()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(LockOutcome::Acquired),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                let item = match failed.item() {
                    Some(item) => item.clone(),
                    None => self
                        .get_item("GetItem", lock_pk(key), "LOCK")
                        .await?
                        .ok_or_else(|| StoreError::unavailable(format!("lock {} changed while being read", key.0)))?,
                };
                Ok(LockOutcome::HeldBy(parse_lock(&item)?))
            }
            _ => Err(store_error("PutItem", err)),
        }
    }

    async fn unlock(&self, key: &LockKey, holder: &ReleaseId) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(lock_pk(key)))
            .key(SK, s("LOCK"))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(store_error("DeleteItem", err)),
        }
    }

    async fn lock_holder(&self, key: &LockKey, now: DateTime<Utc>) -> Result<Option<LockInfo>, StoreError> {
        let Some(item) = self.get_item("GetItem", lock_pk(key), "LOCK").await? else {
            return Ok(None);
        };
        // TTL deletion lags by up to days: an item past its lease is a free lock.
        let expires_us = number_attr(&item, "expires_us")?;
        if i64::try_from(expires_us).unwrap_or(i64::MAX) <= now.timestamp_micros() {
            return Ok(None);
        }
        Ok(Some(parse_lock(&item)?))
    }

    async fn add_rollup(&self, key: &RollupKey, delta: &Rollup) -> Result<(), StoreError> {
        let add = RollupAdd::new(key, delta);
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(add.key))
            .update_expression(add.expression)
            .set_expression_attribute_names(add.names)
            .set_expression_attribute_values(Some(add.values))
            .send()
            .await
            .map_err(|e| store_error("UpdateItem", e))?;
        Ok(())
    }

    async fn close_release(&self, release: &Release, rollup: &RollupKey, delta: &Rollup) -> Result<u64, StoreError> {
        let mut also = Vec::new();
        if delta != &Rollup::default() {
            let add = RollupAdd::new(rollup, delta);
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(add.key))
                .update_expression(add.expression)
                .set_expression_attribute_names(add.names)
                .set_expression_attribute_values(Some(add.values))
                .build()
                .map_err(unbuildable)?;
            also.push(TransactWriteItem::builder().update(update).build());
        }
        // The lock goes with the close when this release holds it; should it change hands before
        // the transaction, the condition cancels it and the caller reads both again (Conflict).
        let lock = lock_pk(&LockKey::new(&release.service, &release.environment));
        let held = self.get_item("GetItem", lock.clone(), "LOCK").await?;
        if held.as_ref().is_some_and(|item| string_attr(item, "holder").ok() == Some(release.id.as_str())) {
            let delete = Delete::builder()
                .table_name(&self.table)
                .key(PK, s(lock))
                .key(SK, s("LOCK"))
                .condition_expression("holder = :holder")
                .expression_attribute_values(":holder", s(release.id.as_str()))
                .build()
                .map_err(unbuildable)?;
            also.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.replace(release, also).await
    }

    async fn rollups(
        &self,
        service: &str,
        environment: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Rollup)>, StoreError> {
        // BETWEEN with bounds the wrong way round is a ValidationException in DynamoDB.
        if from > to {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(rollup_pk(service, environment)))
            .expression_attribute_values(":from", s(format!("DAY#{from}")))
            .expression_attribute_values(":to", s(format!("DAY#{to}")))
            .consistent_read(true);
        self.query(query, None).await?.iter().map(parse_rollup).collect()
    }

    async fn claim_run(&self, run: &str, owner: &str, now: DateTime<Utc>, stale_after: Duration) -> Result<Claim, StoreError> {
        let stale = chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::MAX);
        let stale_before = now.checked_sub_signed(stale).unwrap_or(DateTime::<Utc>::MIN_UTC);
        // A new owner takes it with the next fence; failing that, an owner renewing its own claim
        // keeps its fence. Another claim may come between the two, hence the loop.
        for _ in 0..TRANSACTION_ATTEMPTS {
            let taken = self
                .update_run(run, "SET run_owner = :owner, beat_us = :now, fence = if_not_exists(fence, :zero) + :one REMOVE cancel_reason")
                .condition_expression("attribute_not_exists(run_owner) OR beat_us <= :stale")
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":now", n_i64(now.timestamp_micros()))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":stale", n_i64(stale_before.timestamp_micros()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            let current = match conditional(taken)? {
                Ok(new) => return Ok(Claim::Claimed { fence: number_attr(&new.unwrap_or_default(), "fence")? }),
                Err(old) => parse_run_owner(&old.unwrap_or_default())?,
            };
            let Some(current) = current else { continue };
            if current.owner != owner {
                return Ok(Claim::OwnedBy(current));
            }
            let renewed = self
                .update_run(run, "SET beat_us = :now REMOVE cancel_reason")
                .condition_expression("run_owner = :owner AND fence = :fence")
                .expression_attribute_values(":owner", s(owner))
                .expression_attribute_values(":fence", n(current.fence))
                .expression_attribute_values(":now", n_i64(now.timestamp_micros()))
                .send()
                .await;
            if conditional(renewed)?.is_ok() {
                return Ok(Claim::Claimed { fence: current.fence });
            }
        }
        Err(StoreError::unavailable(format!("run {run}: claims kept colliding ({TRANSACTION_ATTEMPTS} attempts)")))
    }

    async fn beat_run(&self, run: &str, fence: u64, now: DateTime<Utc>) -> Result<Beat, StoreError> {
        let beat = self
            .update_run(run, "SET beat_us = :now")
            .condition_expression("fence = :fence AND attribute_exists(run_owner)")
            .expression_attribute_values(":fence", n(fence))
            .expression_attribute_values(":now", n_i64(now.timestamp_micros()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match conditional(beat)? {
            Ok(new) => Ok(Beat::Owned { cancel: new.as_ref().and_then(|item| string_attr(item, "cancel_reason").ok()).map(str::to_owned) }),
            Err(old) => Ok(Beat::Lost(parse_run_owner(&old.unwrap_or_default())?)),
        }
    }

    async fn run_owner(&self, run: &str) -> Result<Option<RunOwner>, StoreError> {
        match self.get_item("GetItem", run_pk(run), "RUN").await? {
            Some(item) => parse_run_owner(&item),
            None => Ok(None),
        }
    }

    async fn cancel_run(&self, run: &str, reason: &str) -> Result<bool, StoreError> {
        let asked = self
            .update_run(run, "SET cancel_reason = :reason")
            .condition_expression("attribute_exists(run_owner)")
            .expression_attribute_values(":reason", s(reason))
            .send()
            .await;
        Ok(conditional(asked)?.is_ok())
    }

    async fn end_run(&self, run: &str, fence: u64) -> Result<bool, StoreError> {
        let ended = self
            .update_run(run, "REMOVE run_owner, cancel_reason")
            .condition_expression("fence = :fence AND attribute_exists(run_owner)")
            .expression_attribute_values(":fence", n(fence))
            .send()
            .await;
        Ok(conditional(ended)?.is_ok())
    }
}

fn next_version(release: &Release) -> Result<u64, StoreError> {
    release
        .version
        .checked_add(1)
        .ok_or_else(|| StoreError::conflict(format!("release {}: version {} is not one the store wrote", release.id, release.version)))
}

/// The condition of a write of a release read at `read` (bound to `:read`): the item exists at
/// that version. Items written before versions existed have no `version` and count as 0.
fn version_condition(read: u64) -> &'static str {
    if read == 0 { "attribute_exists(PK) AND (attribute_not_exists(version) OR version = :read)" } else { "version = :read" }
}

/// The condition of a write of `release` ([`version_condition`]), which also fails when a cancel
/// was requested since it was read (that request changes no version): the writer reads again.
fn write_condition(release: &Release) -> String {
    match release.cancel_requested {
        Some(_) => version_condition(release.version).to_string(),
        None => format!("{} AND attribute_not_exists({CANCEL_ATTRIBUTE})", version_condition(release.version)),
    }
}

/// Whether writing `release` over the stored `item` would drop a cancel request.
fn drops_cancel(release: &Release, item: &Item) -> bool {
    release.cancel_requested.is_none() && item.contains_key(CANCEL_ATTRIBUTE)
}

/// The version of a stored release item; items written before versions existed are at 0.
fn stored_version(item: &Item) -> u64 {
    item.get("version").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Why a write conditioned by [`version_condition`] failed, from the item as it was.
fn version_conflict(release: &Release, old: Option<&Item>) -> StoreError {
    match old {
        None => StoreError::conflict(format!("release {} does not exist; create_release stores new releases", release.id)),
        Some(item) if stored_version(item) == release.version && drops_cancel(release, item) => {
            StoreError::conflict(format!("release {}: a cancel was requested since it was read", release.id))
        }
        Some(item) => StoreError::conflict(format!(
            "release {}: written at version {}, but another write made it {}",
            release.id,
            release.version,
            stored_version(item)
        )),
    }
}

/// Why a transaction writing a release (its record first) was cancelled.
fn write_cancelled(release: &Release, reasons: &[CancellationReason]) -> StoreError {
    match reasons.first().and_then(|r| r.code()) {
        Some("ConditionalCheckFailed") => version_conflict(release, reasons[0].item()),
        // Another write of the record raced this one, or the lock a close frees changed hands:
        // read them again, as for a version conflict.
        _ if reasons.iter().any(|r| matches!(r.code(), Some("TransactionConflict" | "ConditionalCheckFailed"))) => {
            StoreError::conflict(format!("release {}: a concurrent write collided with this one", release.id))
        }
        _ => cancelled(reasons),
    }
}

/// Throttling, 5xx and lost connections are worth retrying; anything else AWS answered
/// (AccessDenied, a validation error, a missing table) is a refusal that a retry would only
/// repeat, so it must not pass for an outage.
fn store_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    classify(AwsError::from_sdk(operation, err))
}

fn classify(err: AwsError) -> StoreError {
    match err {
        AwsError::Unavailable { .. } => StoreError::unavailable("DynamoDB").caused_by(err),
        AwsError::Rejected { .. } | AwsError::Unexpected { .. } => StoreError::refused("DynamoDB").caused_by(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::sketch::Sketch;
    use chrono::TimeZone;

    #[test]
    fn sortable_time_orders_like_time() {
        let earlier = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let later = earlier + chrono::Duration::nanoseconds(1);
        let much_later = earlier + chrono::Duration::days(400);
        assert!(sortable_time(earlier) < sortable_time(later));
        assert!(sortable_time(later) < sortable_time(much_later));
        assert_eq!(sortable_time(earlier).len(), sortable_time(much_later).len());
    }

    #[test]
    fn unreadable_records_are_corrupt_and_name_the_item() {
        let item = HashMap::from([(PK.to_string(), s("RELEASE#r1")), ("record".to_string(), s("{not json"))]);
        match parse_release(&item) {
            Err(StoreError::Corrupt { message, .. }) => {
                assert!(message.contains("RELEASE#r1") && message.contains("'record'"), "{message}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let missing = HashMap::from([(PK.to_string(), s("LOCK#a"))]);
        assert_eq!(parse_lock(&missing), Err(StoreError::corrupt("attribute 'expires_at' is missing")));
    }

    #[test]
    fn only_transient_failures_are_unavailable() {
        let throttled = AwsError::Unavailable { operation: "PutItem", message: "ThrottlingException: slow down".into() };
        assert!(matches!(classify(throttled), StoreError::Unavailable { .. }));
        let denied = AwsError::Rejected {
            operation: "PutItem",
            code: "AccessDeniedException".into(),
            message: "not authorized to perform dynamodb:PutItem".into(),
        };
        let refused = classify(denied);
        assert!(matches!(refused, StoreError::Refused { .. }), "AccessDenied must be a refusal, got {refused:?}");
        // The AWS error is kept whole as the cause, so its code reaches whoever reads the chain.
        let text = baton_domain::error::chain_text(&refused);
        assert!(text.contains("AccessDeniedException") && text.contains("PutItem"), "{text}");
    }

    #[test]
    fn rollup_items_read_back_every_counter() {
        let delta = Rollup {
            deployments: 1,
            failed_deployments: 2,
            rollbacks: 3,
            lead_time_seconds_total: 4,
            lead_time_samples: 5,
            restore_seconds_total: 6,
            restores: 7,
            redeployments: 8,
            lead_time_fallbacks: 9,
            lead_times: Sketch::of(60.0),
            restore_times: Sketch::of(0.0),
        };
        let mut item: Item = ROLLUP_FIELDS.iter().zip(rollup_values(&delta)).map(|(f, v)| (f.to_string(), n(v))).collect();
        item.insert(SK.into(), s("DAY#2026-03-04"));
        // Each bucket as the ADD names it.
        let add = RollupAdd::new(&RollupKey { service: "web".into(), environment: "prod".into(), day: NaiveDate::MIN }, &delta);
        for (placeholder, name) in add.names.unwrap() {
            item.insert(name, add.values[&placeholder.replace('#', ":")].clone());
        }
        assert_eq!(parse_rollup(&item).unwrap(), (NaiveDate::from_ymd_opt(2026, 3, 4).unwrap(), delta.clone()));
        // Items written before redeployments and fallbacks were counted read them as none.
        item.remove("redeployments");
        item.remove("lead_time_fallbacks");
        assert_eq!(parse_rollup(&item).unwrap().1, Rollup { redeployments: 0, lead_time_fallbacks: 0, ..delta });
    }
}
