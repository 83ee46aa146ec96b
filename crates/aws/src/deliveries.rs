//! The github-webhook's delivery log, on the release table: one item per merge delivery the
//! webhook published, kept for a retention, so that a delivery sent again publishes nothing.
//! Items live under their own key prefix (`DELIVERY#<key>`, sort key `DELIVERY`), which the
//! webhook's IAM policy is limited to, and expire through the table's TTL.

use crate::dynamo::{PK, SK, TTL_ATTRIBUTE, n_i64, s};
use crate::error::AwsError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::collections::HashMap;

pub const DELIVERY_PK_PREFIX: &str = "DELIVERY#";
const DELIVERY_SK: &str = "DELIVERY";

/// What the log says of a delivery the webhook is about to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryClaim {
    /// Not seen within the retention: the caller now holds it and publishes.
    New,
    /// Already claimed by `delivery` (its `X-GitHub-Delivery`) at `at`.
    Seen { delivery: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone)]
pub struct DynamoDeliveryLog {
    client: Client,
    table: String,
    retention: TimeDelta,
}

impl DynamoDeliveryLog {
    /// The log in `table` (the release table), remembering each claim for `retention`.
    pub fn new(client: Client, table: impl Into<String>, retention: TimeDelta) -> DynamoDeliveryLog {
        DynamoDeliveryLog { client, table: table.into(), retention }
    }

    /// Claims `key` for `delivery` unless a claim younger than the retention holds it: one
    /// conditional PutItem, so two concurrent deliveries of the same key cannot both win.
    pub async fn claim(&self, key: &str, delivery: &str, now: DateTime<Utc>) -> Result<DeliveryClaim, AwsError> {
        let expires_at = now + self.retention;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(format!("{DELIVERY_PK_PREFIX}{key}")))
            .item(SK, s(DELIVERY_SK))
            .item("delivery", s(delivery))
            .item("received_at", s(now.to_rfc3339_opts(SecondsFormat::Millis, true)))
            .item("expires_us", n_i64(expires_at.timestamp_micros()))
            // Rounded up: TTL must not delete a claim before its retention ends.
            .item(TTL_ATTRIBUTE, n_i64(expires_at.timestamp() + 1))
            // TTL deletion lags by up to days: a claim past its retention no longer counts.
            .condition_expression("attribute_not_exists(PK) OR expires_us <= :now")
            .expression_attribute_values(":now", n_i64(now.timestamp_micros()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(DeliveryClaim::New),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error() else {
            return Err(AwsError::from_sdk("PutItem", err));
        };
        let old = failed.item().ok_or_else(|| AwsError::unexpected("PutItem", "a failed delivery claim returned no item"))?;
        let text = |name: &str| match old.get(name) {
            Some(AttributeValue::S(value)) => Ok(value.as_str()),
            _ => Err(AwsError::unexpected("PutItem", format!("delivery item {DELIVERY_PK_PREFIX}{key} lacks the string '{name}'"))),
        };
        let at = text("received_at")?;
        let at = DateTime::parse_from_rfc3339(at)
            .map_err(|e| AwsError::unexpected("PutItem", format!("delivery item {DELIVERY_PK_PREFIX}{key}: received_at '{at}': {e}")))?;
        Ok(DeliveryClaim::Seen { delivery: text("delivery")?.to_owned(), at: at.with_timezone(&Utc) })
    }

    /// Gives up `delivery`'s claim on `key` (its event was not published, so GitHub's redelivery
    /// must not be taken for a duplicate); a claim another delivery holds is left alone.
    pub async fn forget(&self, key: &str, delivery: &str) -> Result<(), AwsError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(HashMap::from([(PK.to_owned(), s(format!("{DELIVERY_PK_PREFIX}{key}"))), (SK.to_owned(), s(DELIVERY_SK))])))
            .condition_expression("delivery = :delivery")
            .expression_attribute_values(":delivery", s(delivery))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(AwsError::from_sdk("DeleteItem", err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhooks_grant_is_limited_to_delivery_items() {
        let template = include_str!("../../../infra/template.yaml");
        let grant = format!("dynamodb:LeadingKeys: [\"{DELIVERY_PK_PREFIX}*\"]");
        assert_eq!(template.matches(&grant).count(), 1, "infra/template.yaml must limit the webhook's table access with {grant}");
    }
}
