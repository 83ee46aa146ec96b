//! The Datadog Service Catalog as a [`CatalogSource`]: `GET /api/v2/services/definitions/{service}`
//! returns the service's v2.2 definition, whose `extensions.baton` block is read by the same
//! parser as catalog files.

use crate::http::{RateLimits, exchange, x_rate_limit_wait};
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::catalog::{CatalogLoader, ServiceEntry};
use baton_domain::ports::{CatalogError, CatalogSource};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The Datadog site when `DD_SITE` is unset.
pub const DEFAULT_DATADOG_SITE: &str = "datadoghq.com";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Service definitions read from Datadog.
pub struct DatadogCatalog {
    client: reqwest::Client,
    /// `https://api.<site>`, or a test server.
    base_url: String,
    api_key: Secret,
    application_key: Secret,
    limits: Arc<RateLimits>,
}

impl DatadogCatalog {
    pub fn new(client: reqwest::Client, base_url: impl Into<String>, api_key: Secret, application_key: Secret) -> DatadogCatalog {
        DatadogCatalog {
            client,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            api_key,
            application_key,
            limits: RateLimits::shared(),
        }
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`] (which the Datadog
    /// monitors gates with the same keys share).
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> DatadogCatalog {
        self.limits = limits;
        self
    }

    /// The API base URL of a Datadog site (`datadoghq.com`, `datadoghq.eu`, `us5.datadoghq.com`...).
    pub fn site_url(site: &str) -> String {
        format!("https://api.{}", site.trim().trim_start_matches("app."))
    }

    /// Keys from `DD_API_KEY` and `DD_APP_KEY` (or `DD_APPLICATION_KEY`), site from `DD_SITE`.
    pub fn from_env(client: reqwest::Client) -> Result<DatadogCatalog, CatalogError> {
        let var = |names: &[&str]| names.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
        let missing = |what: &str| CatalogError::unavailable(format!("the Datadog catalog needs {what} in the environment"));
        let api_key = var(&["DD_API_KEY"]).ok_or_else(|| missing("DD_API_KEY"))?;
        let application_key = var(&["DD_APP_KEY", "DD_APPLICATION_KEY"]).ok_or_else(|| missing("DD_APP_KEY"))?;
        let site = var(&["DD_SITE"]).unwrap_or_else(|| DEFAULT_DATADOG_SITE.to_string());
        Ok(DatadogCatalog::new(client, DatadogCatalog::site_url(&site), Secret::new(api_key), Secret::new(application_key)))
    }

    fn searched(&self) -> String {
        format!("Datadog Service Catalog at {}", self.base_url)
    }
}

/// `GET /api/v2/services/definitions/{service}`: `{"data": {"attributes": {"schema": {...}, "meta": {...}}}}`.
#[derive(Deserialize)]
struct DefinitionResponse {
    data: DefinitionData,
}

#[derive(Deserialize)]
struct DefinitionData {
    attributes: DefinitionAttributes,
}

#[derive(Deserialize)]
struct DefinitionAttributes {
    schema: serde_json::Value,
}

#[async_trait]
impl CatalogSource for DatadogCatalog {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        let mut url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| CatalogError::unavailable(format!("Datadog base URL '{}'", self.base_url)).caused_by(e))?;
        url.path_segments_mut()
            .map_err(|_| CatalogError::unavailable(format!("Datadog base URL '{}' cannot take a path", self.base_url)))?
            .extend(["api", "v2", "services", "definitions", name]);
        url.query_pairs_mut().append_pair("schema_version", "v2.2");

        let build = || {
            self.client
                .get(url.clone())
                .header("DD-API-KEY", self.api_key.expose())
                .header("DD-APPLICATION-KEY", self.application_key.expose())
                .header("Accept", "application/json")
        };
        let searched = self.searched();
        let answer = exchange(&self.limits, "Datadog", build, REQUEST_TIMEOUT, &searched, x_rate_limit_wait)
            .await
            .map_err(|e| CatalogError::unavailable(searched.clone()).caused_by(e))?;
        let status = answer.status;
        match status.as_u16() {
            200 => {}
            404 => return Err(CatalogError::NotFound { service: name.to_string(), searched: self.searched() }),
            401 | 403 => {
                return Err(CatalogError::unavailable(format!(
                    "{} refused the API or application key (HTTP {status}); the application key needs the apm_service_catalog_read permission",
                    self.searched()
                )));
            }
            429 => {
                let limited = answer.limited("Datadog", "Datadog is rate limiting (HTTP 429)".into());
                return Err(CatalogError::unavailable(searched).caused_by(limited));
            }
            _ => return Err(CatalogError::unavailable(format!("{} answered HTTP {status}", self.searched()))),
        }
        let body: DefinitionResponse = serde_json::from_slice(&answer.body).map_err(|e| {
            CatalogError::unavailable(format!("{}: unexpected answer for '{name}', expected data.attributes.schema", self.searched()))
                .caused_by(e)
        })?;
        // JSON is YAML: the file parser reads the definition as Datadog returned it.
        let text = serde_json::to_string_pretty(&body.data.attributes.schema).expect("a JSON value serialises");
        let (services, diagnostics) = CatalogLoader::new(crate::registry()).parse(&format!("datadog:{name}"), &text);
        if !diagnostics.is_empty() {
            return Err(CatalogError::Invalid(diagnostics));
        }
        services.into_iter().find(|entry| entry.name == name).ok_or_else(|| CatalogError::NotFound {
            service: name.to_string(),
            searched: format!("{}: its definition has no extensions.baton block", self.searched()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn definition(service: &str, with_baton: bool) -> serde_json::Value {
        let mut schema = serde_json::json!({
            "schema-version": "v2.2",
            "dd-service": service,
            "team": "payments",
            "links": [{"name": "Runbook", "type": "runbook", "url": "https://example.com/runbook"}]
        });
        if with_baton {
            schema["extensions"] = serde_json::json!({"baton": {
                "environment": "production",
                "release-branch": "main",
                "build": {"provider": "command", "command": ["make", "build"]},
                "deploy": {"provider": "command", "command": ["./deploy.sh"], "waves": [{"name": "canary", "targets": ["eu-1"], "bake": "1m"}]},
                "health": {"gates": [{"provider": "command", "command": ["./healthy.sh"]}]}
            }});
        }
        // Datadog's documented answer shape.
        serde_json::json!({"data": {
            "type": "service-definition",
            "id": "f5a3e8d1-0000-4000-8000-000000000000",
            "attributes": {
                "meta": {"github-html-url": "", "ingested-schema-version": "v2.2", "ingestion-source": "api", "last-modified-time": "2026-03-01T10:00:00Z", "origin": "api", "origin-detail": "", "warnings": []},
                "schema": schema
            }
        }})
    }

    async fn catalog_for(server: &MockServer) -> DatadogCatalog {
        DatadogCatalog::new(crate::http_client().unwrap(), server.uri(), Secret::new("api-key-1".into()), Secret::new("app-key-1".into()))
            .with_rate_limits(RateLimits::new(Arc::new(baton_domain::ports::SystemClock)))
    }

    #[tokio::test]
    async fn a_rate_limit_holds_the_keys_back_until_its_end() {
        let server = MockServer::start().await;
        let limited = ResponseTemplate::new(429)
            .set_body_json(serde_json::json!({ "errors": ["Rate limit exceeded"] }))
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", "45");
        Mock::given(method("GET")).respond_with(limited).mount(&server).await;
        let catalog = catalog_for(&server).await;
        let error = catalog.service("payments-api").await.unwrap_err();
        let text = baton_domain::error::chain_text(&error);
        assert!(text.contains("Datadog is rate limiting (HTTP 429)") && text.contains("nothing is sent to it before"), "{text}");
        assert!(!text.contains("api-key-1") && !text.contains("app-key-1"), "{text}");
        let held = baton_domain::error::chain_text(&catalog.service("web").await.unwrap_err());
        assert!(held.contains("is still rate limiting"), "{held}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "nothing sent inside the window");
    }

    #[tokio::test]
    async fn reads_the_baton_block_of_a_definition() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v2/services/definitions/payments-api"))
            .and(query_param("schema_version", "v2.2"))
            .and(header("DD-API-KEY", "api-key-1"))
            .and(header("DD-APPLICATION-KEY", "app-key-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(definition("payments-api", true)))
            .expect(1)
            .mount(&server)
            .await;
        let entry = catalog_for(&server).await.service("payments-api").await.expect("the service is found");
        assert_eq!(entry.name, "payments-api");
        assert_eq!(entry.source, "datadog:payments-api");
        assert_eq!(entry.team.as_deref(), Some("payments"));
        assert_eq!(entry.delivery.deploy.waves[0].bake.0, 60);
    }

    #[tokio::test]
    async fn unknown_services_and_definitions_without_baton_are_not_found() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v2/services/definitions/ghost"))
            .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({"errors": ["Not Found"]})))
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/services/definitions/legacy"))
            .respond_with(ResponseTemplate::new(200).set_body_json(definition("legacy", false)))
            .mount(&server)
            .await;
        let catalog = catalog_for(&server).await;
        assert!(matches!(catalog.service("ghost").await, Err(CatalogError::NotFound { .. })));
        match catalog.service("legacy").await {
            Err(CatalogError::NotFound { searched, .. }) => assert!(searched.contains("no extensions.baton"), "{searched}"),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn invalid_blocks_are_reported_with_diagnostics() {
        let server = MockServer::start().await;
        let mut body = definition("payments-api", true);
        body["data"]["attributes"]["schema"]["extensions"]["baton"]["deploy"]["waves"][0]["bake"] = "5d".into();
        Mock::given(path("/api/v2/services/definitions/payments-api"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        match catalog_for(&server).await.service("payments-api").await {
            Err(CatalogError::Invalid(diagnostics)) => {
                assert!(diagnostics.iter().any(|d| d.path.contains("bake") && d.file == "datadog:payments-api"), "{diagnostics:?}")
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refusals_and_outages_are_unavailable_without_the_keys() {
        let server = MockServer::start().await;
        Mock::given(path("/api/v2/services/definitions/forbidden"))
            .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({"errors": ["Forbidden"]})))
            .mount(&server)
            .await;
        Mock::given(path("/api/v2/services/definitions/down")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
        let catalog = catalog_for(&server).await;
        for (service, expected) in [("forbidden", "apm_service_catalog_read"), ("down", "HTTP 503")] {
            match catalog.service(service).await {
                Err(CatalogError::Unavailable { message, .. }) => {
                    assert!(message.contains(expected), "{message}");
                    assert!(!message.contains("api-key-1") && !message.contains("app-key-1"), "a key leaked: {message}");
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }

    #[test]
    fn sites_map_to_api_hosts() {
        assert_eq!(DatadogCatalog::site_url("datadoghq.com"), "https://api.datadoghq.com");
        assert_eq!(DatadogCatalog::site_url("app.datadoghq.eu"), "https://api.datadoghq.eu");
        assert_eq!(DatadogCatalog::site_url("us5.datadoghq.com"), "https://api.us5.datadoghq.com");
    }
}
