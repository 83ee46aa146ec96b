//! A catalog's `github-actions` block as a build provider. The factory that builds providers is
//! synchronous and resolving secrets is not, so the secrets are resolved on the first call and
//! the provider built from them is kept for the rest.

use super::GitHubAppTokens;
use super::github_actions::{DEFAULT_GITHUB_API_URL, GitHubActionsBuildProvider, GitHubActionsConfig, GitHubAuth};
use crate::http::RateLimits;
use crate::secrets::Secret;
use async_trait::async_trait;
use baton_domain::ports::{BuildPoll, BuildProvider, BuildRequest, ProviderError, RunHandle, SecretResolver};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::OnceCell;

pub(crate) struct GitHubActionsFromCatalog {
    spec: GitHubActionsBuild,
    owner: String,
    repo: String,
    secrets: Arc<dyn SecretResolver>,
    http: reqwest::Client,
    tokens: GitHubAppTokens,
    limits: Arc<RateLimits>,
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
            limits: RateLimits::shared(),
            provider: OnceCell::new(),
        })
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub(crate) fn with_rate_limits(self, limits: Arc<RateLimits>) -> GitHubActionsFromCatalog {
        GitHubActionsFromCatalog { limits, ..self }
    }

    /// `owner/name` of the block's repository.
    pub(crate) fn repository(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    /// The provider the block makes, its secrets resolved on the first call: the repository's
    /// API with the block's credentials.
    pub(crate) async fn provider(&self) -> Result<&GitHubActionsBuildProvider, ProviderError> {
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
                config.traceparent = self.spec.traceparent;
                config.api_url = self.spec.api_url.clone().unwrap_or_else(|| DEFAULT_GITHUB_API_URL.to_owned());
                config.rate_limits = Arc::clone(&self.limits);
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

    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        self.provider().await?.find(request, since).await
    }

    async fn poll(&self, run: &RunHandle) -> Result<BuildPoll, ProviderError> {
        self.provider().await?.poll(run).await
    }

    async fn cancel(&self, run: &RunHandle) -> Result<(), ProviderError> {
        self.provider().await?.cancel(run).await
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::SecretRef;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Shape, Slot, field, required, shape, through_model};
use std::collections::BTreeMap;

/// A `workflow_dispatch` of a GitHub Actions workflow; the run gets `baton_release_id` and
/// `baton_sha` as inputs besides `inputs`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitHubActionsBuild {
    /// `owner/name`.
    pub repository: String,
    /// The workflow's file name (`release.yml`) or id.
    pub workflow: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    /// Pass the build's span of the release's trace as the input `baton_traceparent`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub traceparent: bool,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{run-id}`, `{release-id}`.
    pub artifact: String,
    /// GitHub Enterprise Server's API (`https://HOST/api/v3`); github.com's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// A token with `actions: write` on the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretRef>,
    /// A GitHub App installed on the repository, instead of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<GitHubApp>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GitHubApp {
    /// The app's id or client id.
    pub app_id: String,
    pub installation_id: u64,
    /// The app's private key (PEM).
    pub private_key: SecretRef,
}

const GITHUB_APP: Shape = shape(&[
    required("app-id", Kind::Text, "The app's id or client id."),
    required("installation-id", Kind::Count { min: 1 }, "The app's installation on the repository's owner."),
    required("private-key", Kind::Secret, "The app's private key, PEM (secret reference)."),
]);

const BUILD_GITHUB_ACTIONS: &[Field] = &[
    required("repository", Kind::Text, "`owner/name` of the repository whose workflow builds the service."),
    required("workflow", Kind::Text, "The workflow's file name (`release.yml`) or id; it takes `workflow_dispatch`."),
    field("inputs", Kind::Env, "Workflow inputs, besides `baton_release_id` and `baton_sha` (which the workflow must declare)."),
    field(
        "traceparent",
        Kind::Bool,
        "Pass the build's span of the release's trace as the input `baton_traceparent` (the workflow must declare it); \
         off by default, since GitHub refuses a dispatch with an undeclared input.",
    ),
    required(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{run-id}` and `{release-id}` \
         filled from the run (e.g. `ghcr.io/acme/web:{short-sha}`).",
    ),
    field("api-url", Kind::Url, "GitHub Enterprise Server's API, `https://HOST/api/v3`; github.com's by default."),
    field("token", Kind::Secret, "A token with `actions: write` on the repository (secret reference); or `app`."),
    field("app", Kind::Object(&GITHUB_APP), "A GitHub App installed on the repository, instead of `token`."),
];

pub const GITHUB_ACTIONS: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "github-actions",
    doc: "Dispatches a GitHub Actions workflow and polls its run.",
    fields: BUILD_GITHUB_ACTIONS,
    at_least_one: Some((&["token", "app"], "Baton needs a token or a GitHub App to dispatch the workflow")),
    local_only: None,
    through_model: through_model::<GitHubActionsBuild>,
};
