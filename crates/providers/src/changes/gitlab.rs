//! A repository's history on GitLab, read with the `gitlab-ci` block's `token` (`PRIVATE-TOKEN`;
//! `read_repository` scope at least); with a trigger token alone, unauthenticated, which reads
//! public projects only.
//!
//! - `GET /projects/:id/repository/merge_base?refs[]=base&refs[]=head`: `head` descends from
//!   `base` when their merge base is `base` itself; another merge base means the branch was
//!   rewritten (a force push), a 404 that GitLab has no such commit.
//! - `GET /projects/:id/repository/compare?from=base&to=head&straight=true`: the commits
//!   `base..head` (`straight`: without a merge base of its own), all at once (the API has no
//!   pages), each with `id`, `authored_date`, `committed_date` and `parent_ids`.
//! - `GET /projects/:id/repository/commits/:sha`: one commit; 404 when there is none.

use super::commit_id;
use crate::ci::gitlab_ci::{GitLabCiBuild, project_api};
use crate::ci::rest::{Body, Call, Credential, RestApi};
use crate::http::{RateLimits, decode};
use crate::secrets::{LazySecret, Secret};
use async_trait::async_trait;
use baton_domain::ports::{ChangeHistory, Commit, Compared, MAX_COMPARED, ProviderError, SecretResolver};
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

pub struct GitLabHistory {
    api: RestApi,
    project: String,
    token: Option<LazySecret>,
}

/// A commit as GitLab's commit entity has it. `created_at` is the committer date; older
/// answers may carry only it.
#[derive(Debug, Deserialize)]
struct GitLabCommit {
    id: String,
    #[serde(default)]
    authored_date: Option<DateTime<Utc>>,
    #[serde(default)]
    committed_date: Option<DateTime<Utc>>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    parent_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Comparison {
    #[serde(default)]
    commits: Vec<GitLabCommit>,
}

impl GitLabCommit {
    fn commit(self, source: &str) -> Result<Commit, ProviderError> {
        let committed = self.committed_date.or(self.created_at);
        let (Some(authored_at), Some(committed_at)) = (self.authored_date.or(committed), committed.or(self.authored_date)) else {
            return Err(ProviderError::unavailable(format!("{source}: commit {} has no date", self.id)));
        };
        Ok(Commit { sha: self.id, authored_at, committed_at, parents: self.parent_ids.len() })
    }
}

impl GitLabHistory {
    /// `source` is the catalog file, for error messages.
    pub fn new(
        spec: &GitLabCiBuild,
        source: &str,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
    ) -> Result<GitLabHistory, ProviderError> {
        let api = project_api(spec, source, http)?;
        let token = spec.token.clone().map(|reference| LazySecret::new(reference, secrets));
        Ok(GitLabHistory { api, project: spec.project.0.clone(), token })
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> GitLabHistory {
        self.api.set_rate_limits(limits);
        self
    }

    /// GETs `tail` under the project with `query`: a 2xx answer's body, `None` for a 404.
    async fn read(&self, tail: &[&str], query: &[(&str, &str)], doing: &str) -> Result<Option<Vec<u8>>, ProviderError> {
        let mut url = self.api.endpoint(["projects", self.project.as_str(), "repository"].into_iter().chain(tail.iter().copied()));
        url.query_pairs_mut().extend_pairs(query);
        let secret = match &self.token {
            Some(token) => Some(token.get().await?),
            None => None,
        };
        let secrets: Vec<&Secret> = secret.into_iter().collect();
        let credentials = match &self.token {
            Some(token) => {
                format!("check the token {}: it must be current and read project {}'s repository", token.reference(), self.project)
            }
            None => format!(
                "reading the repository of project {} needs `token`: a trigger token cannot, and the project is not public",
                self.project
            ),
        };
        let call = Call {
            context: format!("{doing} of GitLab project {}", self.project),
            credentials,
            missing: String::new(),
            secrets: &secrets,
            also_ok: Some(StatusCode::NOT_FOUND),
        };
        let credential = match secret {
            Some(secret) => Credential::Header("PRIVATE-TOKEN", secret),
            None => Credential::None,
        };
        let (status, body) = self.api.call(Method::GET, url, credential, Body::Empty, &call).await?;
        Ok(status.is_success().then_some(body))
    }
}

#[async_trait]
impl ChangeHistory for GitLabHistory {
    fn describe(&self) -> String {
        format!("GitLab project {}", self.project)
    }

    async fn compare(&self, base: &str, head: &str) -> Result<Compared, ProviderError> {
        let (base, head) = (commit_id(base)?, commit_id(head)?);
        let doing = format!("finding the merge base of {base} and {head}");
        let Some(body) = self.read(&["merge_base"], &[("refs[]", base), ("refs[]", head)], &doing).await? else {
            return Ok(Compared::Unrelated(format!("GitLab finds no commit {base} or no common history (404)")));
        };
        let merge_base: GitLabCommit = decode(&body, &doing)?;
        if !merge_base.id.starts_with(base) {
            return Ok(Compared::Unrelated(format!("GitLab says their merge base is {}", merge_base.id)));
        }
        let doing = format!("comparing {base}..{head}");
        let Some(body) = self.read(&["compare"], &[("from", base), ("to", head), ("straight", "true")], &doing).await? else {
            return Ok(Compared::Unrelated(format!("GitLab cannot compare {base} with {head} (404)")));
        };
        let listed = decode::<Comparison>(&body, &doing)?.commits;
        let total = listed.len() as u64;
        let mut commits = listed.into_iter().map(|commit| commit.commit(&doing)).collect::<Result<Vec<_>, _>>()?;
        // Oldest first, as the other histories answer, whatever order this GitLab lists them in.
        commits.sort_by_key(|commit| commit.committed_at);
        commits.truncate(MAX_COMPARED);
        Ok(Compared::Carried { commits, total })
    }

    async fn commit(&self, sha: &str) -> Result<Option<Commit>, ProviderError> {
        let sha = commit_id(sha)?;
        let doing = format!("reading commit {sha}");
        let Some(body) = self.read(&["commits", sha], &[], &doing).await? else { return Ok(None) };
        decode::<GitLabCommit>(&body, &doing)?.commit(&doing).map(Some)
    }
}
