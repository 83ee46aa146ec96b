//! The template's DynamoDB tables, created on the local DynamoDB from their own definitions:
//! keys, global secondary indexes and TTL, so the functions meet the table the stack deploys.

use crate::template::{StackNames, Template, TemplateError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Properties DynamoDB Local does not emulate (backups, encryption at rest, deletion
/// protection, tags): accepted and left out. Any other unknown property fails the set-up, so
/// nothing the functions depend on is dropped unnoticed.
const NOT_EMULATED: [&str; 5] =
    ["PointInTimeRecoverySpecification", "SSESpecification", "DeletionProtectionEnabled", "Tags", "ContributorInsightsSpecification"];
const CREATED: [&str; 5] = ["TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode"];

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{table}: {message}")]
    Unsupported { table: String, message: String },
    #[error("{table}: {operation}: {message}")]
    DynamoDb { table: String, operation: &'static str, message: String },
}

/// Creates every `AWS::DynamoDB::Table` of the template; returns (logical id, table name) pairs.
pub async fn create_tables(client: &Client, template: &Template) -> Result<Vec<(String, String)>, TableError> {
    let mut created = Vec::new();
    for logical_id in template.of_type("AWS::DynamoDB::Table") {
        let name = template.physical_name(logical_id)?;
        create_table(client, &name, &template.properties(logical_id)?).await?;
        created.push((logical_id.to_string(), name));
    }
    Ok(created)
}

/// The template's table `logical_id` (`ReleaseTable`, `CatalogTable`) created under `name`: what
/// tests give each its own of, with the keys, indexes and TTL the stack deploys.
pub async fn create_template_table(client: &Client, logical_id: &str, name: &str) -> Result<(), TableError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
    let names = StackNames { stack_name: "test".into(), region: "us-east-1".into(), account: "000000000000".into() };
    let template = Template::load(&path, names, &BTreeMap::new())?;
    create_table(client, name, &template.properties(logical_id)?).await
}

async fn create_table(client: &Client, name: &str, properties: &Value) -> Result<(), TableError> {
    let unsupported = |message: String| TableError::Unsupported { table: name.to_string(), message };
    let dynamodb = |operation: &'static str| move |e: String| TableError::DynamoDb { table: name.to_string(), operation, message: e };
    for key in properties.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
        if !NOT_EMULATED.contains(&key) && !CREATED.contains(&key) && key != "TimeToLiveSpecification" {
            return Err(unsupported(format!("property {key} is not supported by the local stack")));
        }
    }
    let text =
        |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string).ok_or_else(|| unsupported(format!("{key} missing")));
    let list = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let keys = |v: &Value| -> Result<Vec<KeySchemaElement>, TableError> {
        list(v, "KeySchema")
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(text(k, "AttributeName")?)
                    .key_type(KeyType::from(text(k, "KeyType")?.as_str()))
                    .build()
                    .map_err(|e| unsupported(e.to_string()))
            })
            .collect()
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(properties.get("BillingMode").and_then(Value::as_str).unwrap_or("PROVISIONED")))
        .set_key_schema(Some(keys(properties)?));
    for attribute in list(properties, "AttributeDefinitions") {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&attribute, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(text(&attribute, "AttributeType")?.as_str()))
                .build()
                .map_err(|e| unsupported(e.to_string()))?,
        );
    }
    for index in list(properties, "GlobalSecondaryIndexes") {
        let projection = index.get("Projection").cloned().unwrap_or_default();
        let non_key: Vec<String> = list(&projection, "NonKeyAttributes").iter().filter_map(Value::as_str).map(str::to_string).collect();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&index, "IndexName")?)
                .set_key_schema(Some(keys(&index)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection.get("ProjectionType").and_then(Value::as_str).unwrap_or("ALL")))
                        .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
                        .build(),
                )
                .build()
                .map_err(|e| unsupported(e.to_string()))?,
        );
    }
    request.send().await.map_err(|e| dynamodb("CreateTable")(baton_aws::AwsError::from_sdk("CreateTable", e).to_string()))?;
    wait_active(client, name).await.map_err(dynamodb("DescribeTable"))?;
    if let Some(ttl) = properties.get("TimeToLiveSpecification") {
        let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(text(ttl, "AttributeName")?)
            .enabled(enabled)
            .build()
            .map_err(|e| unsupported(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| dynamodb("UpdateTimeToLive")(baton_aws::AwsError::from_sdk("UpdateTimeToLive", e).to_string()))?;
    }
    Ok(())
}

/// Waits (the SDK's `table_exists` waiter) until the table is ACTIVE: DynamoDB Local creates it
/// so, and the waiter's first look sees it.
async fn wait_active(client: &Client, name: &str) -> Result<(), String> {
    const ACTIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
    let waited = client.wait_until_table_exists().table_name(name).wait(ACTIVE_WAIT).await;
    waited.map(|_| ()).map_err(|err| format!("not ACTIVE within {} s: {}", ACTIVE_WAIT.as_secs(), DisplayErrorContext(&err)))
}
