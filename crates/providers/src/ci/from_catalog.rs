//! A catalog's `github-actions` block as a build provider. The factory that builds providers is
//! synchronous and resolving secrets is not, so the secrets are resolved on the first call and
//! the provider built from them is kept for the rest.

use super::GitHubAppTokens;
use super::github_actions::{DEFAULT_GITHUB_API_URL, GitHubActionsBuildProvider, GitHubActionsConfig, GitHubAuth};
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::catalog::GitHubActionsBuild;
use baton_domain::ports::{BuildPoll, BuildProvider, BuildRequest, ProviderError, RunHandle, SecretResolver};
use std::sync::Arc;
use tokio::sync::OnceCell;

pub(crate) struct GitHubActionsFromCatalog {
    spec: GitHubActionsBuild,
    owner: String,
    repo: String,
    secrets: Arc<dyn SecretResolver>,
    http: reqwest::Client,
    tokens: GitHubAppTokens,
    provider: OnceCell<GitHubActionsBuildProvider>,
}

impl GitHubActionsFromCatalog {
    /// Refuses a block whose repository is not `owner/name` or that names neither or both of
    /// `token` and `app`, before any secret is read.
    pub(crate) fn new(
        spec: &GitHubActionsBuild,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
        tokens: GitHubAppTokens,
    ) -> Result<GitHubActionsFromCatalog, ProviderError> {
        let (owner, repo) = spec
            .repository
            .split_once('/')
            .filter(|(owner, repo)| !owner.is_empty() && !repo.is_empty() && !repo.contains('/'))
            .ok_or_else(|| ProviderError::rejected(format!("github-actions: repository '{}' is not `owner/name`", spec.repository)))?;
        if spec.token.is_some() == spec.app.is_some() {
            return Err(ProviderError::rejected("github-actions: set exactly one of `token` and `app`"));
        }
        Ok(GitHubActionsFromCatalog {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            spec: spec.clone(),
            secrets,
            http,
            tokens,
            provider: OnceCell::new(),
        })
    }

    async fn provider(&self) -> Result<&GitHubActionsBuildProvider, ProviderError> {
        self.provider
            .get_or_try_init(|| async {
                let auth = match (&self.spec.token, &self.spec.app) {
                    (Some(token), _) => GitHubAuth::Token(Secret::new(self.secrets.resolve(token).await?)),
                    (None, Some(app)) => GitHubAuth::App {
                        app_id: app.app_id.clone(),
                        installation_id: app.installation_id,
                        private_key_pem: Secret::new(self.secrets.resolve(&app.private_key).await?),
                    },
                    (None, None) => unreachable!("new() requires one of token and app"),
                };
                let mut config = GitHubActionsConfig::new(&self.owner, &self.repo, &self.spec.workflow, auth, &self.spec.artifact);
                config.inputs = self.spec.inputs.clone();
                config.api_url = self.spec.api_url.clone().unwrap_or_else(|| DEFAULT_GITHUB_API_URL.to_owned());
                GitHubActionsBuildProvider::new(config, self.http.clone(), &self.tokens)
            })
            .await
    }
}

#[async_trait]
impl BuildProvider for GitHubActionsFromCatalog {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        self.provider().await?.start(request).await
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        self.provider().await?.poll(run).await
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        self.provider().await?.cancel(run).await
    }
}
