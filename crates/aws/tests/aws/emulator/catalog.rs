//! Catalog push and lookup on DynamoDB Local.

use crate::common;
use baton_local_stack::tables::create_template_table;

use aws_sdk_dynamodb::types::AttributeValue;
use baton_aws::DynamoCatalog;
use baton_aws::catalog::{CatalogItem, cloud_loader, push_catalog};
use baton_domain::catalog::Diagnostic;
use baton_domain::ports::{CatalogError, CatalogSource};

fn definition(service: &str, environment: &str) -> String {
    format!(
        r#"schema-version: v2.2
dd-service: {service}
team: payments
extensions:
  baton:
    environment: {environment}
    release-branch: main
    schedule: cron(0 2 * * ? *)
    build:
      provider: codebuild
      project: {service}
      artifact: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/{service}:{{sha}}"
    deploy:
      provider: ecs
      cluster: payments
      container: app
      waves:
        - name: canary
          targets: [eu-1]
          bake: 30s
    health:
      gates:
        - provider: cloudwatch
          alarm-prefix: {service}-
"#
    )
}

fn catalog_items(file_label: &str, text: &str) -> Result<Vec<CatalogItem>, Vec<Diagnostic>> {
    baton_aws::catalog::catalog_items(&cloud_loader(baton_providers::registry()), file_label, text)
}

async fn catalog_table() -> (aws_sdk_dynamodb::Client, String) {
    let config = common::sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = common::unique("baton-catalog");
    create_template_table(&client, "CatalogTable", &table).await.expect("create the catalog table");
    (client, table)
}

#[tokio::test]
async fn pushed_services_are_found_by_name() {
    let (client, table) = catalog_table().await;
    let file = format!("{}---\n{}", definition("payments-api", "production"), definition("ledger", "staging"));
    let items = catalog_items("catalog/payments.yaml", &file).expect("the file is valid");
    assert_eq!(items.iter().map(|i| i.service.as_str()).collect::<Vec<_>>(), ["payments-api", "ledger"]);
    push_catalog(&client, &table, &items).await.expect("push");

    let catalog = DynamoCatalog::new(client.clone(), &table, baton_providers::registry());
    let ledger = catalog.service("ledger").await.expect("ledger is in the catalog");
    assert_eq!(ledger.name, "ledger");
    assert_eq!(ledger.delivery.environment, "staging");
    assert_eq!(ledger.source, "catalog/payments.yaml");
    assert_eq!(ledger.delivery.deploy.waves[0].bake.0, 30);
    assert_eq!(catalog.service("payments-api").await.expect("payments-api").delivery.environment, "production");

    match catalog.service("billing").await {
        Err(CatalogError::NotFound { service, searched }) => {
            assert_eq!(service, "billing");
            assert!(searched.contains(&table), "{searched}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    // A push replaces the service's definition.
    let moved = catalog_items("catalog/ledger.yaml", &definition("ledger", "production")).unwrap();
    push_catalog(&client, &table, &moved).await.expect("push again");
    let ledger = catalog.service("ledger").await.expect("ledger");
    assert_eq!((ledger.source.as_str(), ledger.delivery.environment.as_str()), ("catalog/ledger.yaml", "production"));
}

#[test]
fn a_push_refuses_local_commands_naming_what_runs_on_aws() {
    let codebuild =
        "      provider: codebuild\n      project: ledger\n      artifact: \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/ledger:{sha}\"\n";
    let local = definition("ledger", "production").replace(codebuild, "      provider: command\n      command: [make, build]\n");
    let diagnostics = catalog_items("catalog/ledger.yaml", &local).expect_err("a local command is refused");
    let [refusal] = &diagnostics[..] else { panic!("{diagnostics:#?}") };
    assert_eq!((refusal.path.as_str(), refusal.line), ("extensions.baton.build.provider", Some(10)));
    assert!(
        refusal.message.contains("`command` runs on the machine running Baton") && refusal.message.contains("`codebuild`"),
        "{refusal}"
    );
}

#[tokio::test]
async fn invalid_definitions_are_refused_on_push_and_reported_on_read() {
    let (client, table) = catalog_table().await;
    let broken = definition("ledger", "production").replace("release-branch: main", "release-brnch: main");
    let diagnostics = catalog_items("catalog/ledger.yaml", &broken).expect_err("a misspelt key is refused");
    assert!(diagnostics.iter().all(|d| d.file == "catalog/ledger.yaml"), "{diagnostics:?}");
    assert!(diagnostics.iter().any(|d| d.path.contains("release-br")), "{diagnostics:?}");

    // An item edited by hand after the push is reported, not trusted.
    client
        .put_item()
        .table_name(&table)
        .item("service", AttributeValue::S("ledger".into()))
        .item("source", AttributeValue::S("catalog/ledger.yaml".into()))
        .item("definition", AttributeValue::S(broken))
        .send()
        .await
        .unwrap();
    match DynamoCatalog::new(client, &table, baton_providers::registry()).service("ledger").await {
        Err(CatalogError::Invalid(found)) => assert_eq!(found, diagnostics),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Listing the catalog: an item edited by hand fails only itself (provider-events still builds the
/// other services' receivers), while `services` refuses the whole list.
#[tokio::test]
async fn a_broken_item_fails_only_itself_in_the_listing() {
    let (client, table) = catalog_table().await;
    let file = format!("{}---\n{}", definition("payments-api", "production"), definition("ledger", "staging"));
    push_catalog(&client, &table, &catalog_items("catalog/payments.yaml", &file).unwrap()).await.expect("push");
    let broken = definition("ledger", "staging").replace("release-branch: main", "release-brnch: main");
    client
        .put_item()
        .table_name(&table)
        .item("service", AttributeValue::S("ledger".into()))
        .item("source", AttributeValue::S("catalog/payments.yaml".into()))
        .item("definition", AttributeValue::S(broken))
        .send()
        .await
        .unwrap();

    let catalog = DynamoCatalog::new(client, &table, baton_providers::registry());
    let listed = catalog.each_service().await.expect("the table lists");
    let read: Vec<(&str, Result<&str, String>)> = listed
        .iter()
        .map(|(name, entry)| (name.as_str(), entry.as_ref().map(|e| e.name.as_str()).map_err(|err| err.to_string())))
        .collect();
    let [(ledger, Err(why)), (payments, Ok(entry))] = &read[..] else { panic!("{read:#?}") };
    assert_eq!((*ledger, *payments, *entry), ("ledger", "payments-api", "payments-api"));
    assert!(why.contains("release-br"), "{why}");
    assert!(matches!(catalog.services().await, Err(CatalogError::Invalid(_))), "the whole list is refused");
}

/// The organisation's `freezes.yaml` is pushed with every service and read back into its entry.
#[tokio::test]
async fn the_organisation_freezes_travel_with_the_pushed_catalog() {
    let (client, table) = catalog_table().await;
    let mut items = catalog_items("catalog/payments.yaml", &definition("payments-api", "production")).expect("the file is valid");
    let freezes = "windows:\n  - {name: weekend, reason: nobody on call, every: 0 16 * * FRI, time-zone: Europe/Paris, duration: 64h}\n";
    items[0].freezes = Some(("catalog/freezes.yaml".into(), freezes.into()));
    push_catalog(&client, &table, &items).await.expect("push");
    let catalog = DynamoCatalog::new(client.clone(), &table, baton_providers::registry());
    let entry = catalog.service("payments-api").await.expect("payments-api");
    assert_eq!(entry.delivery.freeze.windows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["weekend"]);

    // A freeze file broken in the table is reported with its name, not ignored.
    items[0].freezes = Some(("catalog/freezes.yaml".into(), freezes.replace("Europe/Paris", "Europe/Pariss")));
    push_catalog(&client, &table, &items).await.expect("push");
    match catalog.service("payments-api").await {
        Err(CatalogError::Invalid(diagnostics)) => {
            assert_eq!((diagnostics[0].file.as_str(), diagnostics[0].path.as_str()), ("catalog/freezes.yaml", "windows[0].time-zone"))
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}
