//! The service catalog in DynamoDB: one item per service (`service`, `source`, `definition`,
//! `pushed_at`), the definition being the catalog text it came from, parsed on read by the
//! same parser as files ([`CatalogLoader`], for the cloud: providers that run on Baton's own
//! machine are refused).

use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use baton_domain::catalog::{CatalogLoader, Diagnostic, FREEZES_FILE, LoadedCatalog, Registry, ServiceEntry, parse_freezes};
use baton_domain::ports::{CatalogError, CatalogSource};
use chrono::{SecondsFormat, Utc};
use std::collections::{BTreeSet, HashMap};

/// One service's catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    pub service: String,
    /// The file it was read from, for diagnostics and `baton show`.
    pub source: String,
    /// The catalog text that declares the service (its whole file: documents are validated together).
    pub definition: String,
    /// The organisation's freeze file pushed with it (its label and text), whose windows the
    /// entry takes on when read, as it does from files.
    pub freezes: Option<(String, String)>,
}

/// The items to push for one catalog file, or every problem in it: a file with any problem is
/// not pushed, so the table only ever holds definitions that parsed cleanly.
pub fn catalog_items(loader: &CatalogLoader, file_label: &str, text: &str) -> Result<Vec<CatalogItem>, Vec<Diagnostic>> {
    let (services, diagnostics) = loader.parse(file_label, text);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    Ok(services
        .into_iter()
        .map(|entry| CatalogItem { service: entry.name, source: file_label.to_string(), definition: text.to_string(), freezes: None })
        .collect())
}

/// Why a loaded catalog's files cannot be pushed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogFilesError {
    #[error("cannot read {file}: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// The items to push for every service of `catalog`: each service's whole file (its documents
/// were validated together), read again and checked by [`catalog_items`] with `loader` (for the
/// cloud, [`cloud_loader`]).
pub fn loaded_catalog_items(loader: &CatalogLoader, catalog: &LoadedCatalog) -> Result<Vec<CatalogItem>, CatalogFilesError> {
    let files: BTreeSet<&str> = catalog.services().iter().map(|s| s.source.as_str()).collect();
    let mut items = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|error| CatalogFilesError::Read { file: file.to_string(), error })?;
        items.extend(catalog_items(loader, file, &text).map_err(CatalogFilesError::Invalid)?);
    }
    if let Some((file, _)) = catalog.freezes() {
        let text = std::fs::read_to_string(file).map_err(|error| CatalogFilesError::Read { file: file.to_string(), error })?;
        for item in &mut items {
            item.freezes = Some((file.to_string(), text.clone()));
        }
    }
    Ok(items)
}

/// The loader for a catalog pushed for releases on AWS, which have no machine of Baton's to run
/// a local command on: such providers are refused there, at the push.
pub fn cloud_loader(registry: &Registry) -> CatalogLoader<'_> {
    CatalogLoader { for_cloud: true, ..CatalogLoader::new(registry) }
}

/// Writes (or replaces) each item. Services missing from `items` are left as they are.
pub async fn push_catalog(client: &Client, table: &str, items: &[CatalogItem]) -> Result<(), AwsError> {
    let pushed_at = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    for item in items {
        let mut put = client
            .put_item()
            .table_name(table)
            .item("service", AttributeValue::S(item.service.clone()))
            .item("source", AttributeValue::S(item.source.clone()))
            .item("definition", AttributeValue::S(item.definition.clone()))
            .item("pushed_at", AttributeValue::S(pushed_at.clone()));
        if let Some((source, text)) = &item.freezes {
            put = put.item("freezes_source", AttributeValue::S(source.clone())).item("freezes", AttributeValue::S(text.clone()));
        }
        put.send().await.map_err(|e| AwsError::from_sdk("PutItem", e))?;
    }
    Ok(())
}

/// [`CatalogSource`] over the catalog table.
#[derive(Clone)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
    registry: &'static Registry,
}

impl DynamoCatalog {
    pub fn new(client: Client, table: impl Into<String>, registry: &'static Registry) -> DynamoCatalog {
        DynamoCatalog { client, table: table.into(), registry }
    }

    /// Every pushed service's entry (with the organisation's freezes pushed with it), in the
    /// order of their names: what `baton freezes --remote` lists.
    pub async fn services(&self) -> Result<Vec<ServiceEntry>, CatalogError> {
        self.each_service().await?.into_iter().map(|(_, entry)| entry).collect()
    }

    /// Every pushed service by name, in the order of their names, each with its entry or why it
    /// does not read: one broken item fails only itself (the provider-events function still
    /// receives the other services' events).
    pub async fn each_service(&self) -> Result<Vec<(String, Result<ServiceEntry, CatalogError>)>, CatalogError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| CatalogError::unavailable(AwsError::from_sdk("Scan", e).to_string()))?;
            for item in page.items() {
                let Some(AttributeValue::S(name)) = item.get("service") else { continue };
                entries.push((name.clone(), self.entry_of(name, item)));
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// The entry of service `name` from its catalog item, parsed as files are.
    fn entry_of(&self, name: &str, item: &HashMap<String, AttributeValue>) -> Result<ServiceEntry, CatalogError> {
        let searched = format!("DynamoDB table {}", self.table);
        let text = |attr: &str| match item.get(attr) {
            Some(AttributeValue::S(value)) => Ok(value.as_str()),
            _ => Err(CatalogError::unavailable(format!(
                "{searched}: item '{name}' has no string attribute '{attr}' (push the catalog again)"
            ))),
        };
        // The push judged where the entry may run (the local stack pushes local commands on
        // purpose: its functions run on this machine); reading judges only the shape.
        let (services, diagnostics) = CatalogLoader::new(self.registry).parse(text("source")?, text("definition")?);
        if !diagnostics.is_empty() {
            return Err(CatalogError::Invalid(diagnostics));
        }
        let mut entry = services.into_iter().find(|entry| entry.name == name).ok_or_else(|| CatalogError::NotFound {
            service: name.to_string(),
            searched: format!("{searched}: the stored definition does not declare it"),
        })?;
        if let Some(AttributeValue::S(freezes)) = item.get("freezes") {
            let source = text("freezes_source").unwrap_or(FREEZES_FILE);
            let organisation = parse_freezes(self.registry, source, freezes).map_err(CatalogError::Invalid)?;
            entry.delivery.freeze.include(&organisation);
        }
        Ok(entry)
    }
}

#[async_trait]
impl CatalogSource for DynamoCatalog {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("service", AttributeValue::S(name.to_string()))
            .send()
            .await
            .map_err(|e| CatalogError::unavailable(AwsError::from_sdk("GetItem", e).to_string()))?;
        let Some(item) = output.item else {
            return Err(CatalogError::NotFound { service: name.to_string(), searched: format!("DynamoDB table {}", self.table) });
        };
        self.entry_of(name, &item)
    }
}
