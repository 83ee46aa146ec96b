//! The [`ChangeHistory`](baton_domain::ports::ChangeHistory) adapters: where a release's commits
//! are read for its lead times. The entry's build says where: a `command` build reads `git` in its
//! working directory (the checkout it builds), a `github-actions` or `gitlab-ci` build its
//! repository's compare API with the block's credentials. Other builds read no history (their
//! releases count from their own commit or signal).

mod git;
mod github;
mod gitlab;

pub use git::GitHistory;
pub use github::GitHubHistory;
pub use gitlab::GitLabHistory;

use baton_domain::ports::ProviderError;

/// Refuses what is not a commit id (hex, 4 to 64 characters) before it reaches a command line or
/// a URL: a release's sha comes from a signal or a build's answer.
fn commit_id(sha: &str) -> Result<&str, ProviderError> {
    let hex = (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    if hex { Ok(sha) } else { Err(ProviderError::rejected(format!("'{sha}' is not a commit id (4 to 64 hex digits)"))) }
}
