//! The callbacks' receivers, built from the catalog: each provider the registry receives events
//! from gets one receiver accepting what any `events-secret` its blocks name authenticates
//! ([`LocalProviders::receivers`]), read at the first callback after a cold start and again when
//! the catalog may have changed.

use crate::Receivers;
use baton_aws::DynamoCatalog;
use baton_domain::catalog::ServiceEntry;
use baton_domain::error::chain_text;
use baton_domain::ports::CatalogError;
use baton_providers::LocalProviders;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;

/// Where the receivers come from: the catalog's blocks naming an `events-secret`.
#[async_trait::async_trait]
pub trait ReceiverSource: Send + Sync {
    /// The receivers as the catalog names them now; an error when the catalog cannot be read at
    /// all (the receivers built before stay).
    async fn receivers(&self) -> Result<Receivers, String>;
}

/// A catalog changes after a cold start: the receivers are read again when a callback finds no
/// receiver for its path or fails authentication (a provider added, a secret rotated), at most
/// once a [`REFRESH_INTERVAL`], so forged requests cannot turn into a catalog scan each.
pub const REFRESH_INTERVAL: TimeDelta = TimeDelta::minutes(1);

pub struct RefreshingReceivers<R> {
    pub(crate) source: R,
    state: tokio::sync::Mutex<Read>,
}

/// The receivers last read, and when the source was last asked (read or not).
struct Read {
    receivers: Arc<Receivers>,
    /// `None` until the source is first asked.
    asked_at: Option<DateTime<Utc>>,
}

impl<R: ReceiverSource> RefreshingReceivers<R> {
    /// Reads `source` at once: without a catalog the deployment still receives EventBridge's
    /// events, and the callbacks' receivers are read again later.
    pub async fn read(source: R, now: DateTime<Utc>) -> RefreshingReceivers<R> {
        let receivers = Arc::new(source.receivers().await.unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot read the catalog for the callbacks' receivers; trying again on a callback");
            Receivers::default()
        }));
        tracing::info!(receivers = ?receivers.paths(), "callback receivers read from the catalog");
        RefreshingReceivers { source, state: tokio::sync::Mutex::new(Read { receivers, asked_at: Some(now) }) }
    }

    /// None read yet: the first callback reads `source`. A cold start then costs EventBridge's
    /// events (which need no receiver) no catalog scan or secret lookups.
    pub fn unread(source: R) -> RefreshingReceivers<R> {
        RefreshingReceivers { source, state: tokio::sync::Mutex::new(Read { receivers: Arc::default(), asked_at: None }) }
    }

    pub(crate) async fn current(&self) -> Arc<Receivers> {
        Arc::clone(&self.state.lock().await.receivers)
    }

    /// The receivers read again, unless the source was asked less than [`REFRESH_INTERVAL`]
    /// before `now`; the receivers read before when it cannot be read.
    pub(crate) async fn refreshed(&self, now: DateTime<Utc>) -> Option<Arc<Receivers>> {
        let mut state = self.state.lock().await;
        if state.asked_at.is_some_and(|asked_at| now - asked_at < REFRESH_INTERVAL) {
            return None;
        }
        state.asked_at = Some(now);
        match self.source.receivers().await {
            Ok(receivers) => {
                tracing::info!(receivers = ?receivers.paths(), "callback receivers read again from the catalog");
                state.receivers = Arc::new(receivers);
            }
            Err(err) => tracing::error!(error = %err, "cannot read the catalog again; the callbacks' receivers stay as they were"),
        }
        Some(Arc::clone(&state.receivers))
    }
}

/// The catalog, listed.
#[async_trait::async_trait]
pub trait ServiceList: Send + Sync {
    /// Every service by name, each with its entry or why it does not read.
    async fn each_service(&self) -> Result<Vec<(String, Result<ServiceEntry, CatalogError>)>, CatalogError>;
}

#[async_trait::async_trait]
impl ServiceList for DynamoCatalog {
    async fn each_service(&self) -> Result<Vec<(String, Result<ServiceEntry, CatalogError>)>, CatalogError> {
        DynamoCatalog::each_service(self).await
    }
}

/// The receivers the catalog's blocks name secrets for, their secrets resolved by `providers`.
pub struct CatalogReceivers {
    /// `None` on a deployment reading the Datadog Service Catalog: its API reads one service by
    /// name and Baton cannot list them, so such a deployment receives no signed callbacks (its
    /// releases poll), only EventBridge's events.
    catalog: Option<Box<dyn ServiceList>>,
    providers: LocalProviders,
}

impl CatalogReceivers {
    pub fn new(catalog: Option<Box<dyn ServiceList>>, providers: LocalProviders) -> CatalogReceivers {
        if catalog.is_none() {
            tracing::warn!(
                "no catalog table (BATON_CATALOG_TABLE): the Datadog Service Catalog cannot be listed, so no provider's callbacks are received"
            );
        }
        CatalogReceivers { catalog, providers }
    }
}

#[async_trait::async_trait]
impl ReceiverSource for CatalogReceivers {
    async fn receivers(&self) -> Result<Receivers, String> {
        let Some(catalog) = &self.catalog else { return Ok(Receivers::default()) };
        let mut entries = Vec::new();
        for (service, entry) in catalog.each_service().await.map_err(|err| chain_text(&err))? {
            match entry {
                Ok(entry) => entries.push(entry),
                Err(err) => {
                    tracing::warn!(service, error = %chain_text(&err), "a catalog entry that does not read gets no callbacks (its releases poll)")
                }
            }
        }
        let (receivers, problems) = self.providers.receivers(&entries).await;
        for problem in problems {
            tracing::warn!(error = %chain_text(&problem), "a catalog entry whose events secret does not read gets no callbacks (its releases poll)");
        }
        Ok(Receivers(receivers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_domain::catalog::{CatalogLoader, SecretRef};
    use baton_domain::ports::{InboundRefused, InboundRequest, ProviderError, SecretResolver};
    use std::collections::BTreeMap;

    /// A team's catalog entry building on `build`.
    fn entry(name: &str, build: &str) -> ServiceEntry {
        let text = format!(
            "schema-version: v2.2\ndd-service: {name}\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    \
             build: {build}\n    deploy: {{provider: command, command: [./deploy.sh], waves: [{{name: all, targets: [web-1]}}]}}\n    \
             health: {{gates: [{{provider: command, command: [./healthy.sh]}}]}}\n"
        );
        let (mut services, diagnostics) = CatalogLoader::new(baton_providers::registry()).parse(&format!("{name}.yaml"), &text);
        assert_eq!(diagnostics, vec![], "{text}");
        services.remove(0)
    }

    fn gitlab(hook: &str) -> String {
        format!(
            "{{provider: gitlab-ci, project: acme/web, token: env:GITLAB_TOKEN, artifact: \"web:{{pipeline-id}}\", events-secret: {hook}}}"
        )
    }

    struct Listed(Vec<(String, Result<ServiceEntry, CatalogError>)>);

    #[async_trait::async_trait]
    impl ServiceList for Listed {
        async fn each_service(&self) -> Result<Vec<(String, Result<ServiceEntry, CatalogError>)>, CatalogError> {
            Ok(self
                .0
                .iter()
                .map(|(name, entry)| (name.clone(), entry.as_ref().cloned().map_err(|err| CatalogError::unavailable(err.to_string()))))
                .collect())
        }
    }

    struct Secrets(BTreeMap<&'static str, &'static str>);

    #[async_trait::async_trait]
    impl SecretResolver for Secrets {
        async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
            let SecretRef::Env(name) = secret else { return Err(ProviderError::rejected(format!("not an env: reference: {secret:?}"))) };
            self.0
                .get(name.as_str())
                .map(|value| (*value).to_owned())
                .ok_or_else(|| ProviderError::rejected(format!("env:{name} is not set")))
        }
    }

    fn gitlab_call(token: &str) -> InboundRequest {
        InboundRequest {
            path: "/gitlab-ci".to_owned(),
            headers: vec![("x-gitlab-token".to_owned(), token.to_owned())],
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn each_provider_named_with_a_secret_gets_a_receiver_and_a_broken_entry_only_loses_its_own() {
        let catalog = Listed(vec![
            ("web".into(), Ok(entry("web", &gitlab("env:WEB_HOOK")))),
            ("api".into(), Ok(entry("api", &gitlab("env:API_HOOK_UNSET")))),
            ("batch".into(), Err(CatalogError::unavailable("item 'batch' has no string attribute 'source'"))),
            ("shop".into(), Ok(entry("shop", &gitlab("env:SHOP_HOOK")))),
        ]);
        let secrets = Secrets([("WEB_HOOK", "web-hook-secret"), ("SHOP_HOOK", "shop-hook-secret")].into());
        let providers = LocalProviders::new(std::env::temp_dir(), None, Arc::new(secrets), None).unwrap();
        let source = CatalogReceivers::new(Some(Box::new(catalog)), providers);

        let captured = baton_logging::Captured::default();
        let subscriber = baton_logging::json_lines(captured.writer(), "info".parse().unwrap()).finish();
        let receivers = {
            let _logging = tracing::subscriber::set_default(subscriber);
            source.receivers().await.unwrap()
        };
        let names: Vec<&str> = receivers.0.iter().map(|receiver| receiver.provider()).collect();
        assert_eq!(names, ["gitlab-ci"], "command blocks receive nothing");
        let gitlab = receivers.0.iter().find(|receiver| receiver.provider() == "gitlab-ci").unwrap();
        for token in ["web-hook-secret", "shop-hook-secret"] {
            assert_eq!(gitlab.receive(&gitlab_call(token), Utc::now()).map(|events| events.len()), Ok(0), "{token} authenticates");
        }
        assert!(matches!(gitlab.receive(&gitlab_call("forged"), Utc::now()), Err(InboundRefused::Unauthenticated(_))));

        let logged = captured.lines().join("\n");
        assert!(logged.contains("batch") && logged.contains("has no string attribute"), "the broken item is named:\n{logged}");
        assert!(
            logged.contains("api.yaml") && logged.contains("API_HOOK_UNSET"),
            "the entry whose secret does not read is named:\n{logged}"
        );
        assert!(!logged.contains("web-hook-secret") && !logged.contains("shop-hook-secret"), "no secret is logged:\n{logged}");
    }

    #[tokio::test]
    async fn without_a_listable_catalog_no_callback_is_received() {
        let providers = LocalProviders::new(std::env::temp_dir(), None, Arc::new(Secrets(BTreeMap::new())), None).unwrap();
        assert!(CatalogReceivers::new(None, providers).receivers().await.unwrap().0.is_empty());
    }
}
