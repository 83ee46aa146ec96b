//! `DynamoStore` on DynamoDB Local: the store contract suite, plus a lock under the real clock.

use crate::common;
use baton_local_stack::tables::create_template_table;

use baton_aws::DynamoStore;
use baton_domain::error::chain_text;
use baton_domain::ports::{LockOutcome, ReleaseStore, StoreError};
use baton_domain::release::{LockKey, ReleaseId};
use chrono::Utc;
use std::time::Duration;

/// A fresh table per test, so tests run in parallel without seeing each other's items.
async fn make_store() -> DynamoStore {
    let config = common::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = common::unique("baton-releases");
    create_template_table(&client, "ReleaseTable", &table).await.expect("create the release table");
    DynamoStore::new(client, table)
}

baton_contract::store_contract_tests!(make_store);

#[tokio::test]
async fn a_lock_blocks_a_second_release_until_released_or_expired() {
    let store = make_store().await;
    let key = LockKey::new("payments-api", "production");
    let first = ReleaseId("rel-payments-api-1".into());
    let second = ReleaseId("rel-payments-api-2".into());

    assert_eq!(store.try_lock(&key, &first, Utc::now(), Duration::from_secs(30)).await.unwrap(), LockOutcome::Acquired);
    match store.try_lock(&key, &second, Utc::now(), Duration::from_secs(30)).await.unwrap() {
        LockOutcome::HeldBy(info) => assert_eq!(info.holder, first),
        LockOutcome::Acquired => panic!("the second release took a held lock"),
    }
    assert!(store.unlock(&key, &first).await.unwrap());
    assert_eq!(store.try_lock(&key, &second, Utc::now(), Duration::from_secs(1)).await.unwrap(), LockOutcome::Acquired);

    // The second holder dies without unlocking: its short lease runs out on the wall clock.
    assert!(matches!(store.try_lock(&key, &first, Utc::now(), Duration::from_secs(30)).await.unwrap(), LockOutcome::HeldBy(_)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(store.lock_holder(&key, Utc::now()).await.unwrap(), None);
    assert_eq!(store.try_lock(&key, &first, Utc::now(), Duration::from_secs(30)).await.unwrap(), LockOutcome::Acquired);
}

/// A refusal (here a missing table; in AWS as often a missing IAM grant) is not an outage:
/// the definition would retry `Unavailable` six times for nothing.
#[tokio::test]
async fn a_refused_request_is_not_unavailable() {
    let client = aws_sdk_dynamodb::Client::new(&common::sdk_config().await);
    let store = DynamoStore::new(client, common::unique("no-such-table"));
    match store.get_release(&ReleaseId("rel-web-1".into())).await {
        Err(refused @ StoreError::Refused { .. }) => {
            let text = chain_text(&refused);
            assert!(text.contains("ResourceNotFoundException"), "{text}");
        }
        other => panic!("a missing table must be Refused, got {other:?}"),
    }
}

/// An item written before releases had versions and listing items (no `version`, `LPK`, `LSK`)
/// reads as version 0; its first conditional write takes it from there and lists it.
#[tokio::test]
async fn releases_from_before_versions_read_as_version_0() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = make_store().await;
    let release = baton_contract::release_at("rel-web-1", "web", "prod", Utc::now());
    let mut record = serde_json::to_value(&release).unwrap();
    record.as_object_mut().unwrap().remove("version");
    let client = aws_sdk_dynamodb::Client::new(&common::sdk_config().await);
    client
        .put_item()
        .table_name(store.table())
        .item("PK", AttributeValue::S("RELEASE#rel-web-1".into()))
        .item("SK", AttributeValue::S("RELEASE".into()))
        .item("record", AttributeValue::S(record.to_string()))
        .send()
        .await
        .expect("put a legacy item");

    let read = store.get_release(&release.id).await.unwrap().expect("the legacy release is readable");
    assert_eq!(read, release, "a record without a version reads as version 0");
    assert_eq!(store.put_release(&read).await.unwrap(), 1);
    assert!(matches!(store.put_release(&read).await, Err(StoreError::Conflict { .. })), "and is conditional from then on");
    let listed = store.list_releases("web", Some("prod"), 10).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.version).collect::<Vec<_>>(), [1], "its first write lists it");
}

/// A fresh release table behind a proxy that counts the requests made to it.
async fn counted_store() -> (crate::common::moto_proxy::MotoProxy, DynamoStore) {
    let proxy = crate::common::moto_proxy::MotoProxy::start(&common::endpoint("DYNAMODB")).await;
    let client = aws_sdk_dynamodb::Client::new(&common::config_through(&proxy.url).await);
    let table = common::unique("baton-releases");
    create_template_table(&client, "ReleaseTable", &table).await.expect("create the release table");
    (proxy, DynamoStore::new(client, table))
}

/// `count` catalog entries of one team, `svc-0`, `svc-1`...
fn services(count: usize) -> Vec<baton_domain::catalog::ServiceEntry> {
    (0..count)
        .map(|n| {
            serde_json::from_value(serde_json::json!({
                "name": format!("svc-{n}"), "schema": "v2.2", "team": "payments", "source": "svc.yaml",
                "delivery": {"environment": "production", "release-branch": "main",
                    "build": {"provider": "command", "command": ["true"]},
                    "deploy": {"provider": "command", "command": ["true"], "waves": [{"name": "all", "targets": ["a"]}]},
                    "health": {"gates": []}},
            }))
            .unwrap()
        })
        .collect()
}

/// What a team's DORA report reads from DynamoDB (the dashboard's team page and `baton dora
/// --team`): one Query per service, and at most one item per service and day, however many
/// releases the services had. Counted through a proxy in front of DynamoDB Local: the Queries
/// sent and the items DynamoDB read for them (each answer's `ScannedCount`). `bench/dora.sh` runs
/// it at the benchmark's size (`BATON_DORA_TEAM=40x90`: a team of 40 services over 90 days).
#[tokio::test]
async fn a_teams_figures_read_one_query_and_at_most_one_item_a_day_per_service() {
    use baton_domain::release::{Rollup, RollupKey};
    let size = std::env::var("BATON_DORA_TEAM").unwrap_or_else(|_| "8x30".into());
    let (count, days) = size
        .split_once('x')
        .and_then(|(count, days)| Some((count.parse::<usize>().ok()?, days.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("BATON_DORA_TEAM={size}: expected SERVICESxDAYS, e.g. 40x90"));
    let (proxy, store) = counted_store().await;
    let now = Utc::now();
    let entries = services(count);
    for entry in &entries {
        for day in 0..days {
            let key = RollupKey {
                service: entry.name.clone(),
                environment: "production".into(),
                day: (now - chrono::TimeDelta::days(day as i64)).date_naive(),
            };
            store.add_rollup(&key, &Rollup { deployments: 2, ..Rollup::default() }).await.unwrap();
        }
    }
    // Many releases of one service: a report reads rollups, never releases.
    for n in 0..40 {
        let release = baton_contract::release_at(&format!("rel-svc-0-{n}"), "svc-0", "production", now - chrono::TimeDelta::hours(n));
        store.create_release(&release, &format!("k{n}")).await.unwrap();
    }

    let members: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let (before, answered) = (proxy.requests("Query").len(), proxy.answers("Query").len());
    let report = baton_domain::reports::group(&store, "team", "payments", &members, "production", days, now).await.unwrap();
    let queries = proxy.requests("Query").len() - before;
    assert_eq!(report.delivery.figures.deployments, 2 * days * count as u64, "every day of every service counted");
    assert_eq!(queries, count, "one query per service, none for the releases");
    // Each query's key condition names one service's days: a day is one item, none filtered out.
    for body in proxy.requests("Query").iter().skip(before) {
        assert_eq!(body["KeyConditionExpression"], "PK = :pk AND SK BETWEEN :from AND :to");
        assert!(body.get("FilterExpression").is_none(), "{body}");
    }
    let answers = proxy.answers("Query");
    let scanned =
        |field: &str| answers.iter().skip(answered).map(|a| a[field].as_u64().expect("a Query answer counts its items")).sum::<u64>();
    let (read, returned) = (scanned("ScannedCount"), scanned("Count"));
    assert_eq!((read, returned), (days * count as u64, days * count as u64), "one item a day per service, no more");
    println!(
        "DynamoDB items read by a team's figures ({count} services, {days} days) on DynamoDB Local: \
         {queries} Query requests, {read} items read, {returned} returned (bound: days x services = {})",
        days * count as u64
    );
}

/// The Now view over many services reads the open releases and the last day's in a few
/// Queries on the `by-activity` index, and only the locks of the services releasing: not two
/// requests a service. Counted through a proxy in front of DynamoDB Local.
#[tokio::test]
async fn the_now_view_reads_a_few_queries_and_the_locks_of_the_services_releasing() {
    use baton_domain::release::ReleaseStatus;
    const SERVICES: usize = 200;
    let (proxy, store) = counted_store().await;
    let now = Utc::now();
    let entries = services(SERVICES);
    // Three services releasing now (one of them since days), ten that released today, older ones.
    let mut open = Vec::new();
    for (n, age) in [(0, chrono::TimeDelta::days(4)), (1, chrono::TimeDelta::minutes(5)), (2, chrono::TimeDelta::minutes(1))] {
        let mut release = baton_contract::release_at(&format!("rel-open-{n}"), &format!("svc-{n}"), "production", now - age);
        release.status = ReleaseStatus::Running;
        store.create_release(&release, &format!("open-{n}")).await.unwrap();
        let lock = LockKey::new(&format!("svc-{n}"), "production");
        store.try_lock(&lock, &release.id, now, std::time::Duration::from_secs(600)).await.unwrap();
        open.push(release.id.0);
    }
    for n in 0..10 {
        let mut release = baton_contract::release_at(
            &format!("rel-today-{n}"),
            &format!("svc-{}", 10 + n),
            "production",
            now - chrono::TimeDelta::hours(3),
        );
        release.status = ReleaseStatus::Succeeded;
        release.finished_at = Some(now - chrono::TimeDelta::hours(2));
        store.create_release(&release, &format!("today-{n}")).await.unwrap();
    }
    for n in 0..20 {
        let mut release =
            baton_contract::release_at(&format!("rel-old-{n}"), &format!("svc-{}", 30 + n), "production", now - chrono::TimeDelta::days(3));
        release.status = ReleaseStatus::Succeeded;
        release.finished_at = Some(now - chrono::TimeDelta::days(3));
        store.create_release(&release, &format!("old-{n}")).await.unwrap();
    }

    let (queries, gets) = (proxy.requests("Query").len(), proxy.requests("GetItem").len());
    let report = baton_domain::reports::now(&store, &entries, now).await.unwrap();
    let queries = proxy.requests("Query").len() - queries;
    let gets = proxy.requests("GetItem").len() - gets;
    assert_eq!(report.open.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), open, "the open releases, oldest first");
    assert_eq!((report.ended, report.locks.len()), (10, 3));
    assert!(queries <= 3, "the open partition and at most two days: {queries} Queries");
    assert_eq!(gets, 3, "one lock a releasing service, nothing for the {SERVICES} others");
    for body in proxy.requests("Query").iter().rev().take(queries) {
        assert_eq!(body["IndexName"], "by-activity", "{body}");
        assert!(body.get("FilterExpression").is_none(), "{body}");
    }
    println!("the Now view of {SERVICES} services: {queries} Query and {gets} GetItem requests (was {})", 2 * SERVICES);
}
