//! The webhook's delivery log on DynamoDB Local, in a release table as the stack declares it.

use crate::common;
use baton_local_stack::tables::create_template_table;

use baton_aws::deliveries::{DeliveryClaim, DynamoDeliveryLog};
use chrono::{DateTime, TimeDelta, Utc};

async fn make_log(retention: TimeDelta) -> (DynamoDeliveryLog, aws_sdk_dynamodb::Client, String) {
    let config = common::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = common::unique("baton-releases");
    create_template_table(&client, "ReleaseTable", &table).await.expect("create the release table");
    (DynamoDeliveryLog::new(client.clone(), &table, retention), client, table)
}

#[tokio::test]
async fn a_delivery_is_claimed_once_within_the_retention() {
    let (log, client, table) = make_log(TimeDelta::hours(1)).await;
    let t0: DateTime<Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
    assert_eq!(log.claim("body-digest", "d-1", t0).await.unwrap(), DeliveryClaim::New);
    let seen = DeliveryClaim::Seen { delivery: "d-1".into(), at: t0 };
    assert_eq!(log.claim("body-digest", "d-1", t0 + TimeDelta::minutes(1)).await.unwrap(), seen, "a redelivery");
    assert_eq!(log.claim("body-digest", "d-2", t0 + TimeDelta::minutes(59)).await.unwrap(), seen, "a replay under another id");
    assert_eq!(log.claim("other-digest", "d-3", t0).await.unwrap(), DeliveryClaim::New);

    // The item carries the table's TTL attribute, past the retention, under the delivery prefix.
    let item = client
        .get_item()
        .table_name(&table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S("DELIVERY#body-digest".into()))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("DELIVERY".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the claim is stored under DELIVERY#<key>");
    let ttl: i64 = item[baton_aws::dynamo::TTL_ATTRIBUTE].as_n().unwrap().parse().unwrap();
    assert!(ttl > (t0 + TimeDelta::hours(1)).timestamp(), "ttl {ttl} ends after the retention");

    // Not yet deleted by TTL, but expired: a new claim takes it over.
    let later = t0 + TimeDelta::hours(1);
    assert_eq!(log.claim("body-digest", "d-4", later).await.unwrap(), DeliveryClaim::New);
    assert_eq!(log.claim("body-digest", "d-5", later).await.unwrap(), DeliveryClaim::Seen { delivery: "d-4".into(), at: later });
}

#[tokio::test]
async fn only_the_claiming_delivery_gives_its_claim_back() {
    let (log, _, _) = make_log(TimeDelta::days(7)).await;
    let now = Utc::now();
    assert_eq!(log.claim("k", "d-1", now).await.unwrap(), DeliveryClaim::New);
    log.forget("k", "d-2").await.expect("another delivery's forget is no error");
    assert!(matches!(log.claim("k", "d-2", now).await.unwrap(), DeliveryClaim::Seen { delivery, .. } if delivery == "d-1"));
    log.forget("k", "d-1").await.unwrap();
    assert_eq!(log.claim("k", "d-2", now).await.unwrap(), DeliveryClaim::New, "given back: the redelivery claims it");
    log.forget("never-claimed", "d-9").await.expect("forgetting nothing is no error");
}

#[tokio::test]
async fn concurrent_claims_of_one_delivery_have_one_winner() {
    let (log, _, _) = make_log(TimeDelta::days(7)).await;
    let now = Utc::now();
    let claims = futures_util::future::join_all((0..8).map(|i| {
        let log = log.clone();
        async move { log.claim("same-body", &format!("d-{i}"), now).await.unwrap() }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c == DeliveryClaim::New).count(), 1, "{claims:?}");
}
