//! A repository's history on GitHub, read with the `github-actions` block's credentials (a token
//! or App needs `contents: read` besides `actions: write`).
//!
//! - `GET /repos/{owner}/{repo}/compare/{base}...{head}?per_page=100&page=N`: `status` `ahead`
//!   or `identical` means `head` descends from `base`; `behind` and `diverged` that it does not (a
//!   force push), as does a 404 (no such commit, or no common ancestor). With a page parameter
//!   the commits come in chronological order, 100 a page, `total_commits` in every answer; pages
//!   are read until [`MAX_COMPARED`] commits.
//! - `GET /repos/{owner}/{repo}/commits/{sha}`: one commit; 404 or 422 when there is none.
//! - A commit's times are `commit.author.date` and `commit.committer.date` (each may be null in
//!   GitHub's description: the other stands in); `parents` tells merges.

use super::commit_id;
use crate::ci::GitHubAppTokens;
use crate::ci::from_catalog::{GitHubActionsBuild, GitHubActionsFromCatalog};
use crate::http::{RateLimits, decode};
use async_trait::async_trait;
use baton_domain::ports::{ChangeHistory, Commit, Compared, MAX_COMPARED, ProviderError, SecretResolver};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::sync::Arc;

/// Commits a compare page holds (GitHub's maximum).
const PAGE: usize = 100;

pub struct GitHubHistory {
    github: GitHubActionsFromCatalog,
}

#[derive(Debug, Deserialize)]
struct Comparison {
    status: String,
    total_commits: u64,
    #[serde(default)]
    commits: Vec<GitHubCommit>,
}

#[derive(Debug, Deserialize)]
struct GitHubCommit {
    sha: String,
    commit: GitCommit,
    #[serde(default)]
    parents: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct GitCommit {
    #[serde(default)]
    author: Option<Signature>,
    #[serde(default)]
    committer: Option<Signature>,
}

#[derive(Debug, Deserialize)]
struct Signature {
    #[serde(default)]
    date: Option<DateTime<Utc>>,
}

impl GitHubCommit {
    fn commit(self, source: &str) -> Result<Commit, ProviderError> {
        let date = |signature: &Option<Signature>| signature.as_ref().and_then(|s| s.date);
        let (authored, committed) = (date(&self.commit.author), date(&self.commit.committer));
        let (Some(authored_at), Some(committed_at)) = (authored.or(committed), committed.or(authored)) else {
            return Err(ProviderError::unavailable(format!("{source}: commit {} has no date", self.sha)));
        };
        Ok(Commit { sha: self.sha, authored_at, committed_at, parents: self.parents.len() })
    }
}

impl GitHubHistory {
    /// The history of the block's repository, read with its credentials (resolved on first use).
    pub fn new(
        spec: &GitHubActionsBuild,
        secrets: Arc<dyn SecretResolver>,
        http: reqwest::Client,
        tokens: GitHubAppTokens,
    ) -> Result<GitHubHistory, ProviderError> {
        Ok(GitHubHistory { github: GitHubActionsFromCatalog::new(spec, secrets, http, tokens)? })
    }

    /// Rate-limit holds other than the process's [`RateLimits::shared`].
    pub fn with_rate_limits(self, limits: Arc<RateLimits>) -> GitHubHistory {
        GitHubHistory { github: self.github.with_rate_limits(limits) }
    }
}

#[async_trait]
impl ChangeHistory for GitHubHistory {
    fn describe(&self) -> String {
        format!("GitHub {}", self.github.repository())
    }

    async fn compare(&self, base: &str, head: &str) -> Result<Compared, ProviderError> {
        let (base, head) = (commit_id(base)?, commit_id(head)?);
        let api = self.github.provider().await?;
        let basehead = format!("{base}...{head}");
        let doing = format!("comparing {base}...{head}");
        let mut commits = Vec::new();
        let mut page = 1;
        loop {
            let query = [("per_page", PAGE.to_string()), ("page", page.to_string())];
            let Some(body) = api.read_repository(&["compare", &basehead], &query, &doing).await? else {
                return Ok(Compared::Unrelated(format!("GitHub finds no common history of {base} and {head} (404)")));
            };
            let comparison: Comparison = decode(&body, &doing)?;
            if !matches!(comparison.status.as_str(), "ahead" | "identical") {
                return Ok(Compared::Unrelated(format!("GitHub says {head} is {} of {base}", comparison.status)));
            }
            let listed = comparison.commits.len();
            for commit in comparison.commits {
                commits.push(commit.commit(&doing)?);
            }
            let wanted = usize::try_from(comparison.total_commits).unwrap_or(usize::MAX).min(MAX_COMPARED);
            if listed < PAGE || commits.len() >= wanted {
                commits.truncate(MAX_COMPARED);
                return Ok(Compared::Carried { commits, total: comparison.total_commits });
            }
            page += 1;
        }
    }

    async fn commit(&self, sha: &str) -> Result<Option<Commit>, ProviderError> {
        let sha = commit_id(sha)?;
        let api = self.github.provider().await?;
        let doing = format!("reading commit {sha}");
        let Some(body) = api.read_repository(&["commits", sha], &[], &doing).await? else { return Ok(None) };
        decode::<GitHubCommit>(&body, &doing)?.commit(&doing).map(Some)
    }
}
