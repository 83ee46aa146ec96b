//! `CodeBuildProvider` against moto's CodeBuild through the real SDK. moto keeps the calls (it
//! starts builds of the projects it has, refuses unknown ones, keeps accounts apart) but answers
//! SUCCEEDED at the first look, never fails a build and drops the environment overrides; so a
//! proxy in front of it scripts the status sequences and keeps the requests the tests read.

use crate::common;

use aws_config::SdkConfig;
use baton_aws::clients::AwsAccess;
use baton_aws::codebuild::CodeBuildBuild;
use baton_aws::{AwsClients, CodeBuildProvider};
use baton_domain::error::chain_text;
use baton_domain::ports::{BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::ReleaseId;
use common::fixtures::project_on_moto;
use common::moto_proxy::{Answer, MotoProxy};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// moto's default account, and the one the role below is in.
const HOME_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "210987654321";
const OTHER_ACCOUNT_ROLE: &str = "arn:aws:iam::210987654321:role/baton-build";

fn spec(project: &str, artifact: Option<&str>, variable: Option<&str>) -> CodeBuildBuild {
    CodeBuildBuild {
        project: project.into(),
        env: BTreeMap::from([("STAGE".to_string(), "prod".to_string())]),
        artifact: artifact.map(str::to_owned),
        artifact_variable: variable.map(str::to_owned),
        access: AwsAccess::default(),
    }
}

fn request(sha: Option<&str>) -> BuildRequest {
    BuildRequest {
        service: "web".into(),
        environment: "prod".into(),
        release_id: ReleaseId(common::unique("rel")),
        branch: "main".into(),
        sha: sha.map(str::to_owned),
    }
}

/// moto behind a proxy, a project on it, and a provider for that project.
struct Bench {
    proxy: MotoProxy,
    config: SdkConfig,
    project: String,
}

impl Bench {
    async fn new() -> Bench {
        let proxy = MotoProxy::start(&common::endpoint("CODEBUILD")).await;
        let config = common::config_through(&proxy.url).await;
        let project = common::unique("web");
        project_on_moto(&aws_sdk_codebuild::Client::new(&config), &project, HOME_ACCOUNT).await;
        Bench { proxy, config, project }
    }

    fn provider(&self, artifact: Option<&str>, variable: Option<&str>) -> CodeBuildProvider {
        CodeBuildProvider::new(&spec(&self.project, artifact, variable), "catalog/web.yaml", AwsClients::with_base(self.config.clone()))
            .unwrap()
    }

    /// From now on BatchGetBuilds answers each step in turn, then the last one again: each step
    /// sets fields of the build moto returns.
    fn script(&self, steps: Vec<Value>) {
        let remaining = Mutex::new(steps);
        self.proxy.rewrite("BatchGetBuilds", move |answer: &mut Answer| {
            let mut remaining = remaining.lock().unwrap();
            let step = if remaining.len() > 1 { remaining.remove(0) } else { remaining[0].clone() };
            for build in answer.body["builds"].as_array_mut().into_iter().flatten() {
                for (field, value) in step.as_object().unwrap() {
                    build[field] = value.clone();
                }
            }
        });
    }

    /// The one StartBuild request of this test's project.
    fn start_request(&self) -> Value {
        let started: Vec<Value> =
            self.proxy.requests("StartBuild").into_iter().filter(|r| r["projectName"] == self.project.as_str()).collect();
        assert_eq!(started.len(), 1, "{started:?}");
        started.into_iter().next().unwrap()
    }

    /// The build's number as moto gave it (the proxy rewrites statuses only).
    async fn build_number(&self, run: &RunHandle) -> i64 {
        let answer =
            aws_sdk_codebuild::Client::new(&self.config).batch_get_builds().ids(&run.id).send().await.expect("read the build back");
        answer.builds()[0].build_number().expect("a build number")
    }
}

fn step(status: &str, phase: &str, complete: bool) -> Value {
    json!({"buildStatus": status, "currentPhase": phase, "buildComplete": complete})
}

/// Phases as CodeBuild reports a build that ended `status` in `failing`.
fn ended_in(status: &str, failing: &str, code: &str, message: &str) -> Value {
    let ok = |phase: &str| json!({"phaseType": phase, "phaseStatus": "SUCCEEDED", "contexts": [{"statusCode": "", "message": ""}]});
    json!({
        "buildStatus": status,
        "currentPhase": "COMPLETED",
        "buildComplete": true,
        "phases": [ok("SUBMITTED"), ok("QUEUED"), {"phaseType": failing, "phaseStatus": status,
            "contexts": [{"statusCode": code, "message": message}]}, ok("FINALIZING"), {"phaseType": "COMPLETED"}],
    })
}

#[tokio::test]
async fn a_build_starts_at_the_release_commit_with_the_overrides_and_follows_its_status() {
    let bench = Bench::new().await;
    let provider = bench.provider(Some("registry/web:{short-sha}-{build-number}"), Some("IMAGE_URI"));
    let request = request(Some(SHA));
    let run = provider.start(&request).await.expect("start a build");

    assert_eq!(run.provider, "codebuild");
    assert!(run.id.starts_with(&format!("{}:", bench.project)), "{}", run.id);
    let url = run.url.clone().unwrap();
    assert!(url.starts_with(&format!("https://us-east-1.console.aws.amazon.com/codesuite/codebuild/{HOME_ACCOUNT}/projects/")), "{url}");
    assert!(url.ends_with(&format!("/build/{}/?region=us-east-1", run.id.replace(':', "%3A"))), "{url}");

    // moto drops the overrides: what CodeBuild was asked is read from the request itself.
    let started = bench.start_request();
    assert_eq!(started["sourceVersion"], SHA);
    assert_eq!(started["idempotencyToken"], format!("baton-{}", request.release_id));
    let overrides: Vec<(&str, &str, &str)> = started["environmentVariablesOverride"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["value"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        overrides,
        [
            ("STAGE", "prod", "PLAINTEXT"),
            ("BATON_RELEASE_ID", request.release_id.0.as_str(), "PLAINTEXT"),
            ("BATON_SHA", SHA, "PLAINTEXT"),
            ("BATON_BRANCH", "main", "PLAINTEXT"),
            // The build's span of the release's trace, for a buildspec that traces.
            ("TRACEPARENT", baton_domain::trace::traceparent(&request.release_id, "build").as_str(), "PLAINTEXT"),
        ]
    );

    let mut building = step("IN_PROGRESS", "BUILD", false);
    // CodeBuild's `startTime`, in epoch seconds: 2026-01-01T12:00:30.5Z.
    building["startTime"] = json!(1_767_268_830.5);
    bench.script(vec![
        step("IN_PROGRESS", "QUEUED", false),
        building,
        // Exported nothing: the template names the artifact.
        step("SUCCEEDED", "COMPLETED", true),
    ]);
    assert_eq!(provider.poll(&run).await.unwrap().progress, BuildProgress::Running);
    let in_build = provider.poll(&run).await.unwrap();
    assert_eq!((in_build.progress, in_build.started_at), (BuildProgress::Running, Some("2026-01-01T12:00:30.500Z".parse().unwrap())));
    let BuildProgress::Succeeded { artifact } = provider.poll(&run).await.unwrap().progress else { panic!("the build succeeded") };
    assert_eq!(artifact.reference, format!("registry/web:0123456-{}", bench.build_number(&run).await));
    assert_eq!((artifact.sha.as_str(), artifact.branch.as_str()), (SHA, "main"));
    assert_eq!(artifact.build_url.as_deref(), Some(url.as_str()));

    // The variable the buildspec exports wins over the template.
    let digest = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:7c1f";
    bench.script(vec![json!({"buildStatus": "SUCCEEDED", "buildComplete": true,
        "exportedEnvironmentVariables": [{"name": "OTHER", "value": "x"}, {"name": "IMAGE_URI", "value": digest}]})]);
    let BuildProgress::Succeeded { artifact } = provider.poll(&run).await.unwrap().progress else { panic!("the build succeeded") };
    assert_eq!(artifact.reference, digest);
    assert!(bench.proxy.rewritten() >= 4, "the scripted answers were not used: {}", bench.proxy.rewritten());
}

#[tokio::test]
async fn every_unsuccessful_ending_fails_the_build_naming_the_phase_and_why() {
    let bench = Bench::new().await;
    let provider = bench.provider(Some("web:{sha}"), None);
    // Without a sha the build runs the branch's head.
    let run = provider.start(&request(None)).await.expect("start a build");
    let started = bench.start_request();
    assert_eq!(started["sourceVersion"], "main");
    let baton_sha = started["environmentVariablesOverride"].as_array().unwrap().iter().find(|v| v["name"] == "BATON_SHA").cloned();
    assert_eq!(baton_sha.unwrap()["value"], "");

    let endings = [
        ("FAILED", "BUILD", "COMMAND_EXECUTION_ERROR", "Error while executing command: make release. Reason: exit status 2"),
        ("FAULT", "PROVISIONING", "CLIENT_ERROR", "Failed to pull container image"),
        ("TIMED_OUT", "BUILD", "BUILD_TIMED_OUT", "Build has timed out."),
        ("STOPPED", "PRE_BUILD", "BUILD_STOPPED", "Build was stopped by a user"),
    ];
    for (status, phase, code, message) in endings {
        bench.script(vec![step("IN_PROGRESS", "QUEUED", false), ended_in(status, phase, code, message)]);
        assert_eq!(provider.poll(&run).await.unwrap().progress, BuildProgress::Running, "{status}");
        match provider.poll(&run).await.unwrap().progress {
            BuildProgress::Failed { reason } => {
                let expected = format!("{status}: phase {phase} {status}: {code}: {message}; see {}", run.url.as_deref().unwrap());
                assert!(reason.starts_with(&format!("CodeBuild build {}", run.id)) && reason.ends_with(&expected), "{reason}");
            }
            other => panic!("{status}: expected Failed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unknown_project_is_rejected_naming_it() {
    let bench = Bench::new().await;
    let missing = common::unique("missing");
    let provider =
        CodeBuildProvider::new(&spec(&missing, Some("web:{sha}"), None), "catalog/web.yaml", AwsClients::with_base(bench.config.clone()))
            .unwrap();
    match provider.start(&request(Some(SHA))).await {
        Err(error @ ProviderError::Rejected { .. }) => {
            let text = chain_text(&error);
            assert!(text.contains(&format!("CodeBuild project {missing} (us-east-1)")), "{text}");
            assert!(text.contains("ResourceNotFoundException"), "{text}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_build_codebuild_does_not_know_is_rejected() {
    let bench = Bench::new().await;
    let provider = bench.provider(Some("web:{sha}"), None);
    let run = provider.start(&request(Some(SHA))).await.expect("start a build");
    let id = run.id.clone();
    bench.proxy.rewrite("BatchGetBuilds", move |answer: &mut Answer| answer.body = json!({"builds": [], "buildsNotFound": [id]}));
    match provider.poll(&run).await {
        Err(ProviderError::Rejected { message, .. }) => {
            assert!(message.contains(&run.id) && message.contains("lists it as not found"), "{message}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // moto's own answer for an id it never issued: no build at all.
    let invented = RunHandle { id: format!("{}:00000000-0000-0000-0000-000000000000", bench.project), ..run };
    bench.proxy.rewrite("BatchGetBuilds", |_: &mut Answer| {});
    match provider.poll(&invented).await {
        Err(ProviderError::Rejected { message, .. }) => assert!(message.contains(&invented.id), "{message}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_stops_a_running_build_and_leaves_a_finished_one_alone() {
    let bench = Bench::new().await;
    let provider = bench.provider(Some("web:{sha}"), None);
    let run = provider.start(&request(Some(SHA))).await.expect("start a build");
    provider.cancel(&run).await.expect("stop the build");
    assert_eq!(bench.proxy.requests("StopBuild").last().unwrap()["id"], run.id.as_str());

    // CodeBuild refuses to stop a build that ended: no error when the build reads back finished.
    let refusal = |answer: &mut Answer| {
        answer.status = 400;
        answer.body = json!({"__type": "InvalidInputException", "message": "Build cannot be stopped: it is not in progress"});
    };
    bench.proxy.rewrite("StopBuild", refusal);
    bench.script(vec![step("SUCCEEDED", "COMPLETED", true)]);
    provider.cancel(&run).await.expect("a finished build needs no stopping");

    // A refusal for a build still running is an error.
    bench.script(vec![step("IN_PROGRESS", "BUILD", false)]);
    match provider.cancel(&run).await {
        Err(error @ ProviderError::Rejected { .. }) => {
            let text = chain_text(&error);
            assert!(text.contains(&format!("stopping CodeBuild build {}", run.id)) && text.contains("InvalidInputException"), "{text}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_role_builds_in_that_account() {
    let config = common::sdk_config_for(&["CODEBUILD", "STS"]).await;
    let clients = AwsClients::with_base(config.clone());
    let other_account = AwsAccess { region: Some("eu-west-1".into()), role_arn: Some(OTHER_ACCOUNT_ROLE.into()) };
    // The project exists only in the other account (moto keeps accounts apart by credentials).
    let there = aws_sdk_codebuild::Client::new(&clients.config_for(&other_account).await.unwrap());
    let project = common::unique("web");
    project_on_moto(&there, &project, OTHER_ACCOUNT).await;

    let spec = CodeBuildBuild { access: other_account.clone(), ..spec(&project, Some("web:{build-number}"), None) };
    let provider = CodeBuildProvider::new(&spec, "catalog/web.yaml", clients.clone()).unwrap();
    let run = provider.start(&request(Some(SHA))).await.expect("start a build in the other account");
    assert_eq!((run.state["role"].as_str(), run.state["region"].as_str()), (Some(OTHER_ACCOUNT_ROLE), Some("eu-west-1")));
    assert!(
        run.url.as_deref().unwrap().starts_with(&format!("https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/{OTHER_ACCOUNT}/")),
        "{:?}",
        run.url
    );
    // moto: SUCCEEDED at the first look, read in the other account.
    let BuildProgress::Succeeded { artifact } = provider.poll(&run).await.unwrap().progress else { panic!("moto's build succeeded") };
    let number = there.batch_get_builds().ids(&run.id).send().await.unwrap().builds()[0].build_number().unwrap();
    assert_eq!(artifact.reference, format!("web:{number}"));

    // The home account has no such project.
    let home = CodeBuildProvider::new(
        &CodeBuildBuild { access: AwsAccess { region: Some("eu-west-1".into()), role_arn: None }, ..spec },
        "catalog/web.yaml",
        clients,
    )
    .unwrap();
    match home.start(&request(Some(SHA))).await {
        Err(error @ ProviderError::Rejected { .. }) => {
            let text = chain_text(&error);
            assert!(text.contains("ResourceNotFoundException"), "{text}")
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// A StartBuild whose answer was lost (a timeout, a reset, a 5xx after CodeBuild acted): the
/// retried trigger looks for the build first (`find`), which is the build carrying the release
/// id among its overrides, started since the request; another release's look finds nothing, and
/// no second build is started. (On AWS the idempotency token also makes a resent StartBuild
/// answer the first build; moto honours no token, so `find` is what this shows.)
#[tokio::test]
async fn a_build_whose_start_answer_was_lost_is_found_by_its_release_and_no_other() {
    let bench = Bench::new().await;
    let provider = bench.provider(Some("registry/web:{short-sha}"), None);
    let request = request(Some(SHA));
    let since = chrono::Utc::now();
    let run = provider.start(&request).await.expect("moto starts the build");
    // moto drops the environment overrides that CodeBuild keeps on the build: give them back.
    let overrides = bench.start_request()["environmentVariablesOverride"].clone();
    bench.proxy.rewrite("BatchGetBuilds", move |answer: &mut Answer| {
        for build in answer.body["builds"].as_array_mut().into_iter().flatten() {
            build["environment"]["environmentVariables"] = overrides.clone();
        }
    });

    let found = provider.find(&request, since).await.unwrap().expect("the build the lost answer started");
    assert_eq!((found.id.as_str(), found.provider.as_str()), (run.id.as_str(), "codebuild"));
    let other = BuildRequest { release_id: ReleaseId(common::unique("rel")), ..request.clone() };
    assert_eq!(provider.find(&other, since).await.unwrap(), None, "another release's build is not this one");
    let later = since + chrono::TimeDelta::hours(1);
    assert_eq!(provider.find(&request, later).await.unwrap(), None, "a build started before the request is not its own");

    let listed = aws_sdk_codebuild::Client::new(&bench.config).list_builds_for_project().project_name(&bench.project).send().await.unwrap();
    assert_eq!(listed.ids().len(), 1, "one build in the project");
}
