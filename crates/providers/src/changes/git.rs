//! A repository's history read with `git` in a checkout: the local runner's, for a `command`
//! build, in the build's working directory.

use super::commit_id;
use async_trait::async_trait;
use baton_domain::ports::{ChangeHistory, Commit, Compared, MAX_COMPARED, ProviderError};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How long one `git` command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(15);

/// `git log`'s format for one commit a line: sha, parents, author date, committer date (strict ISO 8601).
const FORMAT: &str = "--format=%H%x1f%P%x1f%aI%x1f%cI";

pub struct GitHistory {
    dir: PathBuf,
}

/// How a `git` command ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl GitHistory {
    /// Reads the repository `dir` is in.
    pub fn new(dir: PathBuf) -> GitHistory {
        GitHistory { dir }
    }

    async fn git(&self, args: &[&str]) -> Result<Ran, ProviderError> {
        let mut git = tokio::process::Command::new("git");
        git.arg("-C").arg(&self.dir).args(args).env("GIT_TERMINAL_PROMPT", "0").stdin(Stdio::null()).kill_on_drop(true);
        let what = || format!("git {} in {}", args.join(" "), self.dir.display());
        let output = match tokio::time::timeout(GIT_TIMEOUT, git.output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(err)) => return Err(ProviderError::rejected(format!("{} could not run", what())).caused_by(err)),
            Err(_) => return Err(ProviderError::unavailable(format!("{} took over {} s", what(), GIT_TIMEOUT.as_secs()))),
        };
        Ok(Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    /// The output of a command that must succeed.
    async fn succeed(&self, args: &[&str]) -> Result<String, ProviderError> {
        let ran = self.git(args).await?;
        match ran.code {
            Some(0) => Ok(ran.stdout),
            _ => Err(ProviderError::rejected(format!("git {} in {} failed: {}", args.join(" "), self.dir.display(), ran.stderr))),
        }
    }

    /// Whether the repository has commit `sha`; an error when `dir` is in no repository (git
    /// says both the same way).
    async fn has(&self, sha: &str) -> Result<bool, ProviderError> {
        if self.git(&["cat-file", "-e", &format!("{sha}^{{commit}}")]).await?.code == Some(0) {
            return Ok(true);
        }
        self.succeed(&["rev-parse", "--git-dir"]).await?;
        Ok(false)
    }
}

#[async_trait]
impl ChangeHistory for GitHistory {
    fn describe(&self) -> String {
        format!("git in {}", self.dir.display())
    }

    async fn compare(&self, base: &str, head: &str) -> Result<Compared, ProviderError> {
        let (base, head) = (commit_id(base)?, commit_id(head)?);
        if !self.has(base).await? {
            return Ok(Compared::Unrelated(format!("{} has no commit {base}", self.describe())));
        }
        let ancestor = self.git(&["merge-base", "--is-ancestor", base, head]).await?;
        match ancestor.code {
            Some(0) => {}
            Some(1) => return Ok(Compared::Unrelated(format!("{base} is not an ancestor of {head}"))),
            _ => {
                return Err(ProviderError::rejected(format!(
                    "{}: cannot compare {base} with {head}: {}",
                    self.describe(),
                    ancestor.stderr
                )));
            }
        }
        let range = format!("{base}..{head}");
        let listed = self.succeed(&["log", "--reverse", FORMAT, &range]).await?;
        let lines: Vec<&str> = listed.lines().filter(|line| !line.is_empty()).collect();
        let commits = lines.iter().take(MAX_COMPARED).map(|line| parse(line, &self.describe())).collect::<Result<Vec<_>, _>>()?;
        Ok(Compared::Carried { commits, total: lines.len() as u64 })
    }

    async fn commit(&self, sha: &str) -> Result<Option<Commit>, ProviderError> {
        let sha = commit_id(sha)?;
        if !self.has(sha).await? {
            return Ok(None);
        }
        let shown = self.succeed(&["log", "-1", FORMAT, sha]).await?;
        shown.lines().next().map(|line| parse(line, &self.describe())).transpose()
    }
}

/// One line of [`FORMAT`].
fn parse(line: &str, source: &str) -> Result<Commit, ProviderError> {
    let unreadable = || ProviderError::rejected(format!("{source}: cannot read the commit line '{line}'"));
    let fields: Vec<&str> = line.split('\u{1f}').collect();
    let [sha, parents, authored, committed] = fields.as_slice() else { return Err(unreadable()) };
    let date = |text: &str| DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc)).map_err(|_| unreadable());
    Ok(Commit {
        sha: (*sha).to_owned(),
        authored_at: date(authored)?,
        committed_at: date(committed)?,
        parents: parents.split_whitespace().count(),
    })
}
