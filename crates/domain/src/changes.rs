//! Which commits a successful deployment carried, the starts of its lead times: read from the
//! repository's history through the [`ChangeHistory`] port (`git` locally, the repository
//! provider's compare API on AWS) when record-metrics closes it. Reading the history never fails
//! nor holds up a release: a history that is missing, slow, refuses or no longer holds the
//! previous deployment's commit (a force push) leaves the release's own commit to count, and the
//! record says why ([`Changes::fallback`], and a `carried` event on the timeline).

use crate::catalog::ServiceEntry;
use crate::error::chain_text;
use crate::ports::{ChangeHistory, Commit, Compared, ProviderError, Providers};
use crate::release::{Changes, Release};
use crate::rules::dora;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

/// The longest a comparison may take, its pages included, and the lookup of one commit after it:
/// 20 s in all, well inside record-metrics' minute (its exporters get 4 s after).
pub const COMPARE_BUDGET: Duration = Duration::from_secs(15);
pub const COMMIT_BUDGET: Duration = Duration::from_secs(5);

/// The changes `release`, a successful deployment ending at `finished`, carried, given the
/// service's earlier releases in its environment (`history`).
pub async fn carried(
    providers: &dyn Providers,
    entry: &ServiceEntry,
    release: &Release,
    history: &[Release],
    finished: DateTime<Utc>,
) -> Changes {
    let since = dora::compared_with(release, finished, history).and_then(dora::shipped_commit);
    let Some(head) = dora::shipped_commit(release) else {
        return dora::own_commit(
            since,
            "unknown",
            None,
            release.changed_at,
            "its commit is unknown: measured from its signal's change time".into(),
        );
    };
    if dora::is_redeployment(release, finished, history) {
        return Changes { since: since.map(str::to_owned), commits: Vec::new(), total: 0, fallback: None };
    }
    let repository = match providers.changes(entry) {
        Ok(Some(repository)) => repository,
        Ok(None) => {
            let why = "Baton reads no history for this service's build provider: measured from its own commit".to_owned();
            return dora::own_commit(since, head, None, release.changed_at, why);
        }
        Err(err) => {
            return dora::own_commit(since, head, None, release.changed_at, format!("its history cannot be read: {}", chain_text(&err)));
        }
    };
    let Some(base) = since else {
        let why = format!("the first deployment to {} Baton knows of: only its own commit counts", release.environment);
        return own(repository.as_ref(), None, head, release, why).await;
    };
    if base == head {
        return dora::carried(base, &[], 0);
    }
    match bounded(COMPARE_BUDGET, repository.compare(base, head)).await {
        Ok(Compared::Carried { commits, total }) => dora::carried(base, &commits, total),
        Ok(Compared::Unrelated(why)) => {
            let why = format!(
                "the previous deployment's commit {} is not in the history of {} ({why}; a force push?): only its own commit counts",
                short(base),
                short(head)
            );
            own(repository.as_ref(), Some(base), head, release, why).await
        }
        Err(err) => {
            let why = format!(
                "{} could not compare {}...{}: {}; only its own commit counts",
                repository.describe(),
                short(base),
                short(head),
                chain_text(&err)
            );
            own(repository.as_ref(), Some(base), head, release, why).await
        }
    }
}

/// Only `head` counts, for `why`, from its change time if the history has it.
async fn own(repository: &dyn ChangeHistory, since: Option<&str>, head: &str, release: &Release, why: String) -> Changes {
    let commit: Option<Commit> = bounded(COMMIT_BUDGET, repository.commit(head)).await.ok().flatten();
    let why = if commit.is_some() { why } else { format!("{why} (its commit's time unknown: measured from its signal's change time)") };
    dora::own_commit(since, head, commit.as_ref(), release.changed_at, why)
}

async fn bounded<T>(budget: Duration, call: impl Future<Output = Result<T, ProviderError>>) -> Result<T, ProviderError> {
    tokio::time::timeout(budget, call)
        .await
        .unwrap_or_else(|_| Err(ProviderError::unavailable(format!("no answer within {} s; given up", budget.as_secs()))))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The timeline's line for `changes`.
pub fn describe(changes: &Changes) -> String {
    // Every fallback reason ends saying that only the release's own commit counts.
    if let Some(why) = &changes.fallback {
        return why.clone();
    }
    let since = changes.since.as_deref().map(short).unwrap_or("the start");
    match (changes.commits.len(), changes.total) {
        (0, _) => format!("no new commit since {since}: no lead time"),
        (n, total) if n as u64 == total => format!("{} since {since}, each a lead time", crate::text::counted(n, "commit")),
        (n, total) => format!(
            "{total} commits since {since}; lead times of {n} (merge commits, and commits past the first {}, left out)",
            crate::ports::MAX_COMPARED
        ),
    }
}
