//! The change histories a release's lead times are read from, against the contract suite
//! (`baton_contract::changes`): git over a real repository, GitHub and GitLab against local
//! servers that answer their documented shapes over the same history.

use crate::support::{Secrets, client, fresh_limits};
use baton_contract::changes::{SHAPE, Scenario, change_history_contract, t0};
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ChangeHistory, Compared, ProviderError};
use baton_providers::{GitHistory, GitHubActionsBuild, GitHubAppTokens, GitHubHistory, GitLabCiBuild, GitLabHistory, GitLabProject};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

// ---------------------------------------------------------------- git

fn git(dir: &Path, args: &[&str], at: Option<(i64, i64)>) -> String {
    let mut command = std::process::Command::new("git");
    command.args(args).current_dir(dir).env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some((authored, committed)) = at {
        let date = |hours: i64| format!("@{} +0000", (t0() + TimeDelta::hours(hours)).timestamp());
        command.env("GIT_AUTHOR_DATE", date(authored)).env("GIT_COMMITTER_DATE", date(committed));
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The scenario as real commits, each at its times.
fn repository(dir: &Path) -> Scenario {
    git(dir, &["init", "-q", "-b", "main"], None);
    for (key, value) in [("user.name", "Ann"), ("user.email", "ann@example.com"), ("commit.gpgsign", "false")] {
        git(dir, &["config", key, value], None);
    }
    let mut shas: BTreeMap<&str, String> = BTreeMap::new();
    for (role, parents, authored, committed) in SHAPE {
        let at = Some((*authored, *committed));
        match parents {
            [] => {}
            [parent] => {
                git(dir, &["checkout", "-q", "-B", role, &shas[parent]], None);
            }
            [first, second] => {
                git(dir, &["checkout", "-q", "-B", role, &shas[first]], None);
                git(dir, &["merge", "-q", "--no-ff", "-m", role, &shas[second]], at);
                shas.insert(*role, git(dir, &["rev-parse", "HEAD"], None));
                continue;
            }
            _ => unreachable!("no octopus merges in the scenario"),
        }
        git(dir, &["commit", "-q", "--allow-empty", "-m", role], at);
        shas.insert(*role, git(dir, &["rev-parse", "HEAD"], None));
    }
    scenario(|role| shas[role].clone())
}

fn scenario(sha: impl Fn(&str) -> String) -> Scenario {
    Scenario { root: sha("root"), rebased: sha("rebased"), side: sha("side"), merge: sha("merge"), rewritten: sha("rewritten") }
}

#[tokio::test]
async fn git_reads_the_history_of_the_checkout_a_build_runs_in() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = repository(dir.path());
    // A build's working directory may be any directory of the checkout.
    std::fs::create_dir(dir.path().join("service")).unwrap();
    change_history_contract(&GitHistory::new(dir.path().join("service")), &scenario).await;
}

#[tokio::test]
async fn git_outside_a_checkout_is_an_error_not_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let history = GitHistory::new(dir.path().to_path_buf());
    assert!(history.compare("abcd1234", "abcd5678").await.is_err(), "a directory outside any checkout has no history to compare");
    assert!(history.commit("abcd1234").await.is_err(), "nor commits");
}

// ---------------------------------------------------------------- a hosted repository

/// A commit a provider holds: its id, its parents', when it was authored and committed.
type Held = (String, Vec<String>, DateTime<Utc>, DateTime<Utc>);

/// The scenario's history as a provider holds it: commits with made-up ids, their ancestry.
#[derive(Clone)]
struct Graph {
    commits: Vec<Held>,
}

fn hosted_sha(role: &str) -> String {
    let digit = match role {
        "root" => '1',
        "rebased" => '2',
        "side" => '3',
        "merge" => '4',
        _ => '5',
    };
    std::iter::repeat_n(digit, 40).collect()
}

impl Graph {
    fn scenario() -> Graph {
        let at = |hours: i64| t0() + TimeDelta::hours(hours);
        let commits = SHAPE
            .iter()
            .map(|(role, parents, authored, committed)| {
                (hosted_sha(role), parents.iter().map(|p| hosted_sha(p)).collect(), at(*authored), at(*committed))
            })
            .collect();
        Graph { commits }
    }

    /// `n` commits in a line, a minute apart.
    fn line(n: usize) -> Graph {
        let sha = |i: usize| format!("{i:040x}");
        let commits = (1..=n)
            .map(|i| {
                let at = t0() + TimeDelta::minutes(i as i64);
                (sha(i), if i == 1 { vec![] } else { vec![sha(i - 1)] }, at, at)
            })
            .collect();
        Graph { commits }
    }

    fn find(&self, sha: &str) -> Option<&Held> {
        self.commits.iter().find(|(id, ..)| id == sha)
    }

    /// `sha` and every commit before it.
    fn ancestors(&self, sha: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut next = vec![sha.to_owned()];
        while let Some(sha) = next.pop() {
            if let Some((_, parents, ..)) = self.find(&sha).filter(|_| seen.insert(sha.clone())) {
                next.extend(parents.iter().cloned());
            }
        }
        seen
    }

    /// `base..head`, oldest first.
    fn range(&self, base: &str, head: &str) -> Vec<&Held> {
        let before = self.ancestors(base);
        let mut range: Vec<_> =
            self.ancestors(head).into_iter().filter(|sha| !before.contains(sha)).filter_map(|sha| self.find(&sha)).collect();
        range.sort_by_key(|(_, _, _, committed)| *committed);
        range
    }

    fn status(&self, base: &str, head: &str) -> &'static str {
        match () {
            _ if base == head => "identical",
            _ if self.ancestors(head).contains(base) => "ahead",
            _ if self.ancestors(base).contains(head) => "behind",
            _ => "diverged",
        }
    }
}

fn query(request: &Request, name: &str) -> Vec<String> {
    request.url.query_pairs().filter(|(key, _)| key == name).map(|(_, value)| value.into_owned()).collect()
}

/// GitHub's REST API for one repository, `acme/web`, over a [`Graph`], checking the bearer token.
struct GitHub(Graph);

const GITHUB_TOKEN: &str = "ghp-history-token";

impl GitHub {
    fn commit(&self, sha: &str) -> Value {
        let (sha, parents, authored, committed) = self.0.find(sha).unwrap();
        let date = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
        json!({
            "sha": sha,
            "node_id": "C_kwDOA",
            "url": format!("https://api.github.com/repos/acme/web/commits/{sha}"),
            "html_url": format!("https://github.com/acme/web/commit/{sha}"),
            "commit": {
                "author": { "name": "Ann", "email": "ann@example.com", "date": date(authored) },
                "committer": { "name": "GitHub", "email": "noreply@github.com", "date": date(committed) },
                "message": "a change",
                "comment_count": 0,
            },
            "author": null,
            "committer": null,
            "parents": parents.iter().map(|p| json!({ "sha": p, "url": format!("https://api.github.com/repos/acme/web/commits/{p}") })).collect::<Vec<_>>(),
        })
    }
}

impl Respond for GitHub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {GITHUB_TOKEN}")) {
            return ResponseTemplate::new(401).set_body_json(json!({ "message": "Bad credentials", "status": "401" }));
        }
        let path = request.url.path();
        if let Some(basehead) = path.strip_prefix("/repos/acme/web/compare/") {
            let (base, head) = basehead.split_once("...").unwrap();
            if self.0.find(base).is_none() || self.0.find(head).is_none() {
                return ResponseTemplate::new(404).set_body_json(json!({ "message": "Not Found", "status": "404" }));
            }
            let range = self.0.range(base, head);
            let per_page: usize = query(request, "per_page").first().map_or(250, |p| p.parse().unwrap());
            let page: usize = query(request, "page").first().map_or(1, |p| p.parse().unwrap());
            let commits: Vec<Value> = range.iter().skip((page - 1) * per_page).take(per_page).map(|(sha, ..)| self.commit(sha)).collect();
            return ResponseTemplate::new(200).set_body_json(json!({
                "status": self.0.status(base, head),
                "ahead_by": range.len(),
                "behind_by": self.0.range(head, base).len(),
                "total_commits": range.len(),
                "commits": commits,
                "files": [],
            }));
        }
        if let Some(sha) = path.strip_prefix("/repos/acme/web/commits/") {
            return match self.0.find(sha) {
                Some(_) => ResponseTemplate::new(200).set_body_json(self.commit(sha)),
                None => ResponseTemplate::new(422)
                    .set_body_json(json!({ "message": format!("No commit found for SHA: {sha}"), "status": "422" })),
            };
        }
        ResponseTemplate::new(404).set_body_json(json!({ "message": "Not Found" }))
    }
}

/// The history of `acme/web` at `api_url`, read with the token [`GitHub`] takes.
fn github_history(api_url: String) -> GitHubHistory {
    let spec = GitHubActionsBuild {
        repository: "acme/web".into(),
        workflow: "release.yml".into(),
        inputs: BTreeMap::new(),
        traceparent: false,
        artifact: "ghcr.io/acme/web:{short-sha}".into(),
        api_url: Some(api_url),
        token: Some(SecretRef::Env("GITHUB_TOKEN".into())),
        app: None,
    };
    let secrets = Secrets::of(&[("GITHUB_TOKEN", GITHUB_TOKEN)]);
    GitHubHistory::new(&spec, secrets, client(), GitHubAppTokens::new()).unwrap().with_rate_limits(fresh_limits())
}

async fn github(graph: Graph) -> (MockServer, GitHubHistory) {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any()).respond_with(GitHub(graph)).mount(&server).await;
    let history = github_history(server.uri());
    (server, history)
}

#[tokio::test]
async fn github_compares_with_the_block_s_credentials() {
    let (_server, history) = github(Graph::scenario()).await;
    change_history_contract(&history, &scenario(hosted_sha)).await;
}

#[tokio::test]
async fn github_reads_a_long_range_page_by_page() {
    let (server, history) = github(Graph::line(151)).await;
    let (base, head) = (format!("{:040x}", 1), format!("{:040x}", 151));
    let Compared::Carried { commits, total } = history.compare(&base, &head).await.unwrap() else { panic!("a line is carried") };
    assert_eq!((commits.len(), total), (150, 150));
    assert_eq!(commits.first().map(|c| c.sha.clone()), Some(format!("{:040x}", 2)), "oldest first");
    let pages: Vec<Vec<String>> = server.received_requests().await.unwrap().iter().map(|r| query(r, "page")).collect();
    assert_eq!(pages, [vec!["1".to_owned()], vec!["2".to_owned()]], "two pages of 100");
}

#[tokio::test]
async fn github_refusals_and_outages_are_errors_the_caller_falls_back_on() {
    for (status, unavailable) in [(500, true), (401, false), (403, false)] {
        let server = MockServer::start().await;
        crate::support::answer(
            &server,
            "GET",
            "/repos/acme/web/compare/1234abcd...5678abcd",
            ResponseTemplate::new(status).set_body_json(json!({ "message": "no" })),
        )
        .await;
        let history = github_history(server.uri());
        let error = history.compare("1234abcd", "5678abcd").await.expect_err("not a comparison");
        assert_eq!(matches!(error, ProviderError::Unavailable { .. }), unavailable, "HTTP {status}: {error}");
        assert!(!error.to_string().contains(GITHUB_TOKEN));
    }
}

/// GitLab's REST API for one project, `acme/web`, over a [`Graph`], checking `PRIVATE-TOKEN`.
struct GitLab(Graph);

const GITLAB_TOKEN: &str = "glpat-history-token";

impl GitLab {
    fn commit(&self, sha: &str) -> Value {
        let (sha, parents, authored, committed) = self.0.find(sha).unwrap();
        let date = |at: &DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, false);
        json!({
            "id": sha,
            "short_id": &sha[..8],
            "created_at": date(committed),
            "parent_ids": parents,
            "title": "a change",
            "message": "a change\n",
            "author_name": "Ann",
            "author_email": "ann@example.com",
            "authored_date": date(authored),
            "committer_name": "GitLab",
            "committer_email": "noreply@gitlab.com",
            "committed_date": date(committed),
            "trailers": {},
            "web_url": format!("https://gitlab.com/acme/web/-/commit/{sha}"),
        })
    }
}

impl Respond for GitLab {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let not_found = || ResponseTemplate::new(404).set_body_json(json!({ "message": "404 Commit Not Found" }));
        if request.headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(GITLAB_TOKEN) {
            return ResponseTemplate::new(401).set_body_json(json!({ "message": "401 Unauthorized" }));
        }
        let path = request.url.path();
        let Some(tail) = path.strip_prefix("/api/v4/projects/acme%2Fweb/repository/") else {
            return ResponseTemplate::new(404).set_body_json(json!({ "message": "404 Project Not Found" }));
        };
        match tail {
            "merge_base" => {
                let refs = query(request, "refs[]");
                if refs.len() != 2 || refs.iter().any(|sha| self.0.find(sha).is_none()) {
                    return not_found();
                }
                let common = self.0.ancestors(&refs[0]).intersection(&self.0.ancestors(&refs[1])).cloned().collect::<Vec<_>>();
                match common.iter().filter_map(|sha| self.0.find(sha)).max_by_key(|(.., committed)| *committed) {
                    Some((sha, ..)) => ResponseTemplate::new(200).set_body_json(self.commit(sha)),
                    None => not_found(),
                }
            }
            "compare" => {
                let (from, to) = (query(request, "from").remove(0), query(request, "to").remove(0));
                assert_eq!(query(request, "straight"), ["true"], "base..head, not from the merge base");
                if self.0.find(&from).is_none() || self.0.find(&to).is_none() {
                    return not_found();
                }
                // Newest first, as `git log` lists them.
                let commits: Vec<Value> = self.0.range(&from, &to).iter().rev().map(|(sha, ..)| self.commit(sha)).collect();
                ResponseTemplate::new(200).set_body_json(json!({
                    "commit": commits.first(),
                    "commits": commits,
                    "diffs": [],
                    "compare_timeout": false,
                    "compare_same_ref": from == to,
                    "web_url": format!("https://gitlab.com/acme/web/-/compare/{from}...{to}?straight=true"),
                }))
            }
            _ => match tail.strip_prefix("commits/").filter(|sha| self.0.find(sha).is_some()) {
                Some(sha) => ResponseTemplate::new(200).set_body_json(self.commit(sha)),
                None => not_found(),
            },
        }
    }
}

#[tokio::test]
async fn gitlab_compares_with_the_block_s_token() {
    let server = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any()).respond_with(GitLab(Graph::scenario())).mount(&server).await;
    let spec = GitLabCiBuild {
        project: GitLabProject("acme/web".into()),
        token: Some(SecretRef::Env("GITLAB_TOKEN".into())),
        trigger_token: None,
        variables: BTreeMap::new(),
        artifact: "registry.gitlab.com/acme/web:{short-sha}".into(),
        api_url: Some(format!("{}/api/v4", server.uri())),
        events_secret: None,
    };
    let secrets = Secrets::of(&[("GITLAB_TOKEN", GITLAB_TOKEN)]);
    let history = GitLabHistory::new(&spec, "catalog/web.yaml", secrets, client()).unwrap().with_rate_limits(fresh_limits());
    change_history_contract(&history, &scenario(hosted_sha)).await;
}
