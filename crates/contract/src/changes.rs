//! The contract suite for [`ChangeHistory`]: the git adapter and each repository provider's
//! adapter (against a local server answering the provider's documented shapes) run it over the
//! same history, [`Scenario`], which each harness builds its own way (real commits, or answers).
//!
//! ```text
//! root ── rebased ──┬── merge        rebased: written at +1 h, rebased at +3 h
//!    │              │                side: +2 h; merge: +4 h, of rebased and side
//!    ├── side ──────┘
//!    └── rewritten                   rebased again after a force push: committed at +5 h
//! ```

use baton_domain::ports::{ChangeHistory, Commit, Compared};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// The commits of the history, by role, as the harness made them (their ids).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub root: String,
    pub rebased: String,
    pub side: String,
    pub merge: String,
    pub rewritten: String,
}

/// A commit id no history holds.
pub const UNKNOWN: &str = "0000000000000000000000000000000000000bad";

/// The history's first instant.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
}

fn hours(h: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(h)
}

/// Each commit of the history as the harness must make it: `(role, parents' roles, authored, committed)`,
/// parents first.
pub const SHAPE: &[(&str, &[&str], i64, i64)] = &[
    ("root", &[], 0, 0),
    ("rebased", &["root"], 1, 3),
    ("side", &["root"], 2, 2),
    ("merge", &["rebased", "side"], 4, 4),
    ("rewritten", &["root"], 1, 5),
];

impl Scenario {
    /// The commit of `role` as every history must tell it.
    pub fn commit(&self, role: &str) -> Commit {
        let (_, parents, authored, committed) = SHAPE.iter().find(|(name, ..)| *name == role).expect("a role of the scenario");
        Commit { sha: self.sha(role).to_owned(), authored_at: hours(*authored), committed_at: hours(*committed), parents: parents.len() }
    }

    pub fn sha(&self, role: &str) -> &str {
        match role {
            "root" => &self.root,
            "rebased" => &self.rebased,
            "side" => &self.side,
            "merge" => &self.merge,
            "rewritten" => &self.rewritten,
            other => panic!("no role {other} in the scenario"),
        }
    }
}

fn sorted(mut commits: Vec<Commit>) -> Vec<Commit> {
    commits.sort_by(|a, b| a.sha.cmp(&b.sha));
    commits
}

/// Every behaviour of the port over `scenario`, which `history` reads.
pub async fn change_history_contract(history: &dyn ChangeHistory, scenario: &Scenario) {
    let compare = |base: &str, head: &str| {
        let (base, head) = (base.to_owned(), head.to_owned());
        async move { history.compare(&base, &head).await.unwrap_or_else(|err| panic!("{}: compare {base}...{head}: {err}", history.describe())) }
    };
    let s = scenario;

    // Ahead: the commits head adds, each with its own times, merges told by their parents.
    match compare(&s.root, &s.merge).await {
        Compared::Carried { commits, total } => {
            assert_eq!(total, 3, "root..merge holds rebased, side and merge");
            let expected = vec![s.commit("rebased"), s.commit("side"), s.commit("merge")];
            assert_eq!(sorted(commits), sorted(expected), "{}: root..merge", history.describe());
        }
        other => panic!("{}: root..merge is carried, got {other:?}", history.describe()),
    }
    assert_eq!(compare(&s.merge, &s.merge).await, Compared::Carried { commits: Vec::new(), total: 0 }, "a commit compared with itself");

    // A force push rewrote the branch: the previous commit is not in the new head's history.
    assert!(matches!(compare(&s.rebased, &s.rewritten).await, Compared::Unrelated(_)), "{}: rebased...rewritten", history.describe());
    // An older head (a redeployment) does not carry its base either.
    assert!(matches!(compare(&s.merge, &s.root).await, Compared::Unrelated(_)), "{}: merge...root", history.describe());
    assert!(matches!(compare(UNKNOWN, &s.merge).await, Compared::Unrelated(_)), "{}: an unknown base", history.describe());

    for role in ["root", "rebased", "merge", "rewritten"] {
        let found = history.commit(s.sha(role)).await.unwrap_or_else(|err| panic!("{}: commit {role}: {err}", history.describe()));
        assert_eq!(found, Some(s.commit(role)), "{}: commit {role}", history.describe());
    }
    assert_eq!(history.commit(UNKNOWN).await.expect("an unknown commit is no error"), None);
    assert!(history.compare("--output=x", &s.merge).await.is_err(), "what is not a commit id is refused");
}
