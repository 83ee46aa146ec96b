//! Which merge deliveries were already published: the port the handler calls, the DynamoDB log
//! the Lambda uses (`baton_aws::deliveries`), and an in-memory log for tests and local runs.

use async_trait::async_trait;
use baton_aws::AwsError;
pub use baton_aws::deliveries::DeliveryClaim;
use baton_aws::deliveries::DynamoDeliveryLog;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a published delivery is remembered. GitHub lets a person redeliver a delivery for
/// 3 days after it was sent; a week covers that with room for a late replay of a captured one.
/// Past it, a replay publishes again, and the release it asks for already exists (load-catalog's
/// idempotency key is the service, commit and pull request), so it starts nothing.
pub const DELIVERY_RETENTION: TimeDelta = TimeDelta::days(7);

#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Claims `key` for `delivery`, or says which delivery claimed it within the retention.
    async fn claim(&self, key: &str, delivery: &str, now: DateTime<Utc>) -> Result<DeliveryClaim, AwsError>;
    /// Gives `delivery`'s claim on `key` back, after its event could not be published.
    async fn forget(&self, key: &str, delivery: &str) -> Result<(), AwsError>;
}

#[async_trait]
impl DeliveryLog for DynamoDeliveryLog {
    async fn claim(&self, key: &str, delivery: &str, now: DateTime<Utc>) -> Result<DeliveryClaim, AwsError> {
        DynamoDeliveryLog::claim(self, key, delivery, now).await
    }

    async fn forget(&self, key: &str, delivery: &str) -> Result<(), AwsError> {
        DynamoDeliveryLog::forget(self, key, delivery).await
    }
}

/// The log in this process's memory: for tests, the fuzz target and a local webhook, where
/// deliveries come to one process.
pub struct MemoryDeliveryLog {
    retention: TimeDelta,
    /// key -> (delivery, claimed at)
    claims: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl MemoryDeliveryLog {
    pub fn new(retention: TimeDelta) -> MemoryDeliveryLog {
        MemoryDeliveryLog { retention, claims: Mutex::default() }
    }
}

#[async_trait]
impl DeliveryLog for MemoryDeliveryLog {
    async fn claim(&self, key: &str, delivery: &str, now: DateTime<Utc>) -> Result<DeliveryClaim, AwsError> {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        // Expired claims go on every claim, so the map holds one retention's deliveries at most.
        claims.retain(|_, (_, at)| *at + self.retention > now);
        if let Some((delivery, at)) = claims.get(key) {
            return Ok(DeliveryClaim::Seen { delivery: delivery.clone(), at: *at });
        }
        claims.insert(key.to_owned(), (delivery.to_owned(), now));
        Ok(DeliveryClaim::New)
    }

    async fn forget(&self, key: &str, delivery: &str) -> Result<(), AwsError> {
        let mut claims = self.claims.lock().unwrap_or_else(|p| p.into_inner());
        if claims.get(key).is_some_and(|(holder, _)| holder == delivery) {
            claims.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claim_holds_for_the_retention_and_only_its_delivery_gives_it_back() {
        let log = MemoryDeliveryLog::new(TimeDelta::hours(1));
        let t0: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
        assert_eq!(log.claim("k", "d-1", t0).await.unwrap(), DeliveryClaim::New);
        let seen = DeliveryClaim::Seen { delivery: "d-1".into(), at: t0 };
        assert_eq!(log.claim("k", "d-2", t0 + TimeDelta::minutes(59)).await.unwrap(), seen);
        assert_eq!(log.claim("other", "d-3", t0).await.unwrap(), DeliveryClaim::New, "keys are independent");

        log.forget("k", "d-2").await.unwrap();
        assert_eq!(log.claim("k", "d-2", t0).await.unwrap(), seen, "another delivery cannot give d-1's claim back");
        log.forget("k", "d-1").await.unwrap();
        assert_eq!(log.claim("k", "d-1", t0).await.unwrap(), DeliveryClaim::New, "given back, then claimed again");

        assert_eq!(log.claim("k", "d-4", t0 + TimeDelta::hours(1)).await.unwrap(), DeliveryClaim::New, "expired after the retention");
    }
}
