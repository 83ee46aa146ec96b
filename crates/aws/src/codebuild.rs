//! The `codebuild` build provider: starts a build of an AWS CodeBuild project at the release's
//! commit and follows it until it ends.
//!
//! - **Start.** `StartBuild` with `sourceVersion` the release's sha (its branch when it names
//!   none), the catalog's `env` and then `BATON_RELEASE_ID`, `BATON_SHA` (empty without a sha),
//!   `BATON_BRANCH` and `TRACEPARENT` (the build's span of the release's trace) as plaintext
//!   environment overrides, and an idempotency token derived
//!   from the release id: a task retried within CodeBuild's five minutes gets the same build
//!   back instead of starting a second one.
//! - **Find.** Past those five minutes, a `StartBuild` whose answer was lost is found by
//!   `find`: the project's latest builds (`ListBuildsForProject`, newest first, then
//!   `BatchGetBuilds`) started since just before the request with the release's
//!   `BATON_RELEASE_ID` override; the oldest of them is the one to follow.
//! - **Poll.** `BatchGetBuilds`. `IN_PROGRESS` runs (whatever the phase, `QUEUED` included);
//!   `SUCCEEDED` gives the artifact; `FAILED`, `FAULT`, `TIMED_OUT` and `STOPPED` fail, naming
//!   the phase that did not succeed and CodeBuild's context message for it. A status CodeBuild
//!   adds later runs until the build says it is complete. A build id in `buildsNotFound` (the
//!   build was deleted, or the handle names another account or region) is `Rejected`.
//! - **Artifact.** The value the build exports as `artifact-variable` when it exports one (the
//!   buildspec knows what it pushed, a digest say); else `artifact` filled from the build's
//!   facts; a build that exports nothing and has no template fails. Its sha is the commit
//!   CodeBuild resolved, else the release's, else [`UNKNOWN_SHA`].
//! - **Cancel.** `StopBuild`. CodeBuild refuses to stop a finished build; when it refuses, the
//!   build is read back and a finished one is not an error.
//! - Calls go through [`AwsClients::config_for`] (the block's region and role, the SDK's call
//!   timeouts); errors are classified by [`AwsError`] (throttling and 5xx stay retryable).

use crate::clients::{AwsAccess, AwsClients, region_of, to_chrono};
use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_codebuild::types::{Build, EnvironmentVariable, EnvironmentVariableType, SortOrderType, StatusType};
use baton_domain::ports::{BuildPoll, BuildProgress, BuildProvider, BuildRequest, ProviderError, RunHandle};
use baton_domain::release::{Artifact, ReleaseId, UNKNOWN_SHA};
use baton_domain::template::{ArtifactTemplate, RunFacts, RunWord};
use baton_domain::trace::{TRACEPARENT, build_traceparent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `provider` of the handles this provider returns.
const PROVIDER: &str = "codebuild";
/// How many of the project's latest builds `find` reads.
const FIND_CANDIDATES: usize = 20;
/// How far before Baton's request the build it found may have started: clocks differ.
const FIND_CLOCK_SLACK: chrono::Duration = chrono::Duration::seconds(30);

pub struct CodeBuildProvider {
    project: String,
    env: BTreeMap<String, String>,
    artifact: Option<ArtifactTemplate>,
    artifact_variable: Option<String>,
    access: AwsAccess,
    clients: AwsClients,
}

/// What a run keeps in its handle (whose id is the build id): where to find the build, and
/// what the artifact is named from besides the build's own facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CodeBuildRun {
    region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    release_id: ReleaseId,
    branch: String,
    /// The release's sha, when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<String>,
}

impl CodeBuildProvider {
    fn handle(&self, request: &BuildRequest, region: String, build: &Build, id: &str) -> RunHandle {
        let url = console_url(&region, build);
        let run = CodeBuildRun {
            region,
            role: self.access.role_arn.clone(),
            release_id: request.release_id.clone(),
            branch: request.branch.clone(),
            sha: request.sha.clone(),
        };
        RunHandle {
            provider: PROVIDER.into(),
            id: id.to_owned(),
            url: Some(url),
            state: serde_json::to_value(&run).expect("a CodeBuildRun is plain JSON"),
        }
    }

    /// `source` is the catalog file, for error messages. Refuses a bad artifact template before
    /// any build starts.
    pub fn new(spec: &CodeBuildBuild, source: &str, clients: AwsClients) -> Result<CodeBuildProvider, ProviderError> {
        let artifact = spec
            .artifact
            .as_deref()
            .map(|template| ArtifactTemplate::parse(template, RunWord::BuildNumber))
            .transpose()
            .map_err(|why| ProviderError::rejected(format!("{source}: extensions.baton.build.artifact: codebuild {why}")))?;
        if artifact.is_none() && spec.artifact_variable.is_none() {
            return Err(ProviderError::rejected(format!(
                "{source}: extensions.baton.build: codebuild expected `artifact`, `artifact-variable` or both"
            )));
        }
        Ok(CodeBuildProvider {
            project: spec.project.clone(),
            env: spec.env.clone(),
            artifact,
            artifact_variable: spec.artifact_variable.clone(),
            access: spec.access.clone(),
            clients,
        })
    }

    /// The client of the run's account and region.
    async fn client_for(&self, run: &CodeBuildRun) -> Result<aws_sdk_codebuild::Client, ProviderError> {
        let access = AwsAccess { region: Some(run.region.clone()), role_arn: run.role.clone() };
        Ok(aws_sdk_codebuild::Client::new(&self.clients.config_for(&access).await?))
    }

    /// Where the build stands: see the module docs.
    fn progress(&self, build: &Build, run: &CodeBuildRun, url: &str) -> BuildProgress {
        let label = build_label(build);
        match build.build_status() {
            Some(StatusType::Succeeded) => self.built(build, run, url),
            Some(status @ (StatusType::Failed | StatusType::Fault | StatusType::TimedOut | StatusType::Stopped)) => {
                BuildProgress::Failed { reason: format!("{label} {}: {}; see {url}", status.as_str(), failed_phase(build)) }
            }
            Some(StatusType::InProgress) | None => BuildProgress::Running,
            Some(other) if build.build_complete() => {
                BuildProgress::Failed { reason: format!("{label} ended {}: {}; see {url}", other.as_str(), failed_phase(build)) }
            }
            Some(_) => BuildProgress::Running,
        }
    }

    /// A successful build's artifact: the exported variable, else the template.
    fn built(&self, build: &Build, run: &CodeBuildRun, url: &str) -> BuildProgress {
        let sha = build.resolved_source_version().or(run.sha.as_deref()).unwrap_or(UNKNOWN_SHA);
        let exported = self
            .artifact_variable
            .as_deref()
            .and_then(|name| build.exported_environment_variables().iter().find(|v| v.name() == Some(name)).and_then(|v| v.value()));
        let reference = match (exported.filter(|value| !value.trim().is_empty()), &self.artifact) {
            (Some(value), _) => value.trim().to_owned(),
            (None, Some(template)) => {
                let number = build.build_number().map(|n| n.to_string()).unwrap_or_default();
                template.render(&RunFacts { sha, branch: &run.branch, run_id: &number, release_id: &run.release_id.0 })
            }
            (None, None) => {
                let name = self.artifact_variable.as_deref().unwrap_or_default();
                return BuildProgress::Failed {
                    reason: format!(
                        "{} SUCCEEDED but did not export {name} (artifact-variable): list it under `env.exported-variables` \
                         in the buildspec, or set `artifact`; see {url}",
                        build_label(build)
                    ),
                };
            }
        };
        BuildProgress::Succeeded {
            artifact: Artifact { reference, sha: sha.to_owned(), branch: run.branch.clone(), build_url: Some(url.to_owned()) },
        }
    }
}

#[async_trait]
impl BuildProvider for CodeBuildProvider {
    async fn start(&self, request: &BuildRequest) -> Result<RunHandle, ProviderError> {
        let config = self.clients.config_for(&self.access).await?;
        let region = region_of(&config);
        let codebuild = aws_sdk_codebuild::Client::new(&config);
        let context = format!("starting a build of CodeBuild project {} ({region})", self.project);
        let span = build_traceparent(&request.release_id);
        let baton = [
            ("BATON_RELEASE_ID", request.release_id.0.as_str()),
            ("BATON_SHA", request.sha.as_deref().unwrap_or_default()),
            ("BATON_BRANCH", request.branch.as_str()),
            (TRACEPARENT, span.as_str()),
        ];
        // The validator keeps `BATON_*` out of `env`, and a `TRACEPARENT` of its own gives way to
        // the release's, so Baton's own come last and stay Baton's.
        let overrides = self
            .env
            .iter()
            .filter(|(name, _)| name.as_str() != TRACEPARENT)
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain(baton)
            .map(|(name, value)| plaintext(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        let started = codebuild
            .start_build()
            .project_name(&self.project)
            .source_version(request.sha.as_deref().unwrap_or(&request.branch))
            .set_environment_variables_override(Some(overrides))
            .idempotency_token(idempotency_token(&request.release_id))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("StartBuild", e).for_provider(&context))?;
        let Some((build, id)) = started.build_value().and_then(|build| Some((build, build.id()?))) else {
            return Err(ProviderError::rejected(format!(
                "{context}: StartBuild answered without a build id; look for the build whose BATON_RELEASE_ID is {}",
                request.release_id
            )));
        };
        Ok(self.handle(request, region, build, id))
    }

    async fn find(&self, request: &BuildRequest, since: DateTime<Utc>) -> Result<Option<RunHandle>, ProviderError> {
        let config = self.clients.config_for(&self.access).await?;
        let region = region_of(&config);
        let codebuild = aws_sdk_codebuild::Client::new(&config);
        let context = format!("looking for the build of release {} in CodeBuild project {} ({region})", request.release_id, self.project);
        let listed = codebuild
            .list_builds_for_project()
            .project_name(&self.project)
            .sort_order(SortOrderType::Descending)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListBuildsForProject", e).for_provider(&context))?;
        let recent: Vec<String> = listed.ids().iter().take(FIND_CANDIDATES).cloned().collect();
        if recent.is_empty() {
            return Ok(None);
        }
        let answer = codebuild
            .batch_get_builds()
            .set_ids(Some(recent))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("BatchGetBuilds", e).for_provider(&context))?;
        let earliest = since - FIND_CLOCK_SLACK;
        let ours = |build: &&Build| {
            let overrides = build.environment().map(|environment| environment.environment_variables()).unwrap_or_default();
            build.start_time().map(to_chrono).is_some_and(|started| started >= earliest)
                && overrides.iter().any(|v| v.name() == "BATON_RELEASE_ID" && v.value() == request.release_id.0)
        };
        let oldest = answer.builds().iter().filter(ours).min_by_key(|build| build.start_time().map(to_chrono));
        Ok(oldest.and_then(|build| Some(self.handle(request, region.clone(), build, build.id()?))))
    }

    async fn poll(&self, handle: &RunHandle) -> Result<BuildPoll, ProviderError> {
        let run = run_of(handle)?;
        let codebuild = self.client_for(&run).await?;
        let build = get_build(&codebuild, &handle.id, &run.region).await?;
        let url = handle.url.clone().unwrap_or_else(|| console_url(&run.region, &build));
        Ok(BuildPoll { progress: self.progress(&build, &run, &url), started_at: build.start_time().map(to_chrono), run: None })
    }

    async fn cancel(&self, handle: &RunHandle) -> Result<(), ProviderError> {
        let run = run_of(handle)?;
        let codebuild = self.client_for(&run).await?;
        let context = format!("stopping CodeBuild build {} ({})", handle.id, run.region);
        let Err(refused) = codebuild.stop_build().id(&handle.id).send().await else { return Ok(()) };
        let refused = AwsError::from_sdk("StopBuild", refused);
        // CodeBuild refuses to stop a build that already ended; that one needs no stopping.
        if matches!(refused, AwsError::Rejected { .. }) && get_build(&codebuild, &handle.id, &run.region).await?.build_complete() {
            return Ok(());
        }
        Err(refused.for_provider(&context))
    }
}

/// The handle's state, when it is one of this provider's.
fn run_of(handle: &RunHandle) -> Result<CodeBuildRun, ProviderError> {
    if handle.provider != PROVIDER {
        return Err(ProviderError::rejected(format!(
            "run {} belongs to the '{}' provider, not the CodeBuild build provider",
            handle.id, handle.provider
        )));
    }
    serde_json::from_value(handle.state.clone())
        .map_err(|e| ProviderError::rejected(format!("CodeBuild run handle {}: unreadable state", handle.id)).caused_by(e))
}

/// The build `id`, or Rejected when CodeBuild does not know it.
async fn get_build(codebuild: &aws_sdk_codebuild::Client, id: &str, region: &str) -> Result<Build, ProviderError> {
    let context = format!("reading CodeBuild build {id} ({region})");
    let answer =
        codebuild.batch_get_builds().ids(id).send().await.map_err(|e| AwsError::from_sdk("BatchGetBuilds", e).for_provider(&context))?;
    match answer.builds().iter().find(|b| b.id() == Some(id)) {
        Some(build) => Ok(build.clone()),
        None => Err(ProviderError::rejected(format!(
            "{context}: BatchGetBuilds {}: the build was deleted, or belongs to another account or region",
            if answer.builds_not_found().iter().any(|missing| missing == id) { "lists it as not found" } else { "does not return it" }
        ))),
    }
}

fn plaintext(name: &str, value: &str) -> Result<EnvironmentVariable, ProviderError> {
    EnvironmentVariable::builder()
        .name(name)
        .value(value)
        .r#type(EnvironmentVariableType::Plaintext)
        .build()
        .map_err(|e| ProviderError::rejected(format!("CodeBuild environment override {name}")).caused_by(e))
}

/// One token per release: the same release starts one build, however often its task is retried.
fn idempotency_token(release: &ReleaseId) -> String {
    format!("baton-{release}")
}

/// "CodeBuild build web:0b5c… (#47)", for messages.
fn build_label(build: &Build) -> String {
    let number = build.build_number().map(|n| format!(" (#{n})")).unwrap_or_default();
    format!("CodeBuild build {}{number}", build.id().unwrap_or("?"))
}

/// Why a finished build did not succeed: the first phase that did not succeed, with CodeBuild's
/// context for it (`COMMAND_EXECUTION_ERROR: Error while executing command: make. Reason: exit
/// status 2`).
fn failed_phase(build: &Build) -> String {
    let failed = build.phases().iter().find(|phase| matches!(phase.phase_status(), Some(status) if *status != StatusType::Succeeded));
    let Some(phase) = failed else {
        return format!("no phase says why (current phase {})", build.current_phase().unwrap_or("unknown"));
    };
    let name = phase.phase_type().map(|t| t.as_str()).unwrap_or("an unnamed phase");
    let status = phase.phase_status().map(|s| s.as_str()).unwrap_or_default();
    let contexts: Vec<String> = phase
        .contexts()
        .iter()
        .filter_map(|context| {
            let code = context.status_code().filter(|c| !c.is_empty());
            match (code, context.message().filter(|m| !m.is_empty())) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (code, message) => code.or(message).map(str::to_owned),
            }
        })
        .collect();
    let detail = if contexts.is_empty() { String::new() } else { format!(": {}", contexts.join("; ")) };
    format!("phase {name} {status}{detail}")
}

/// The build's page in the CodeBuild console of `region`.
fn console_url(region: &str, build: &Build) -> String {
    let id = build.id().unwrap_or_default();
    let project = build.project_name().or_else(|| id.split(':').next()).unwrap_or_default();
    // arn:aws:codebuild:<region>:<account>:build/<id>: the console's path names the account.
    let account = build.arn().and_then(|arn| arn.split(':').nth(4)).filter(|a| !a.is_empty());
    format!(
        "https://{region}.console.aws.amazon.com/codesuite/codebuild/{}projects/{project}/build/{}/?region={region}",
        account.map(|a| format!("{a}/")).unwrap_or_default(),
        id.replace(':', "%3A")
    )
}

// ------------------------------------------------------------------ catalog block

use crate::clients::{REGION, ROLE_ARN};
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};

/// A build of an AWS CodeBuild project at the release's commit; it gets `BATON_RELEASE_ID`,
/// `BATON_SHA` and `BATON_BRANCH` in its environment besides `env`. The artifact is the
/// variable `artifact_variable` the build exports when it does, else `artifact` filled in (the
/// validator asks for at least one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodeBuildBuild {
    /// The project's name.
    pub project: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}`, `{release-id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// An environment variable the buildspec exports (`env.exported-variables`) holding the
    /// artifact's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_variable: Option<String>,
    #[serde(flatten)]
    pub access: AwsAccess,
}

const BUILD_CODEBUILD: &[Field] = &[
    required("project", Kind::Text, "The CodeBuild project's name; its build runs the release's commit (else its branch)."),
    field("env", Kind::Env, "Environment overrides, besides `BATON_RELEASE_ID`, `BATON_SHA`, `BATON_BRANCH` and `TRACEPARENT`."),
    field(
        "artifact",
        Kind::Text,
        "The artifact's reference, with `{sha}`, `{short-sha}`, `{branch}`, `{build-number}` and `{release-id}` \
         filled from the build; used when `artifact-variable` is unset or the build did not export it.",
    ),
    field(
        "artifact-variable",
        Kind::EnvName,
        "A variable the buildspec exports (`env.exported-variables`) holding the artifact's reference; \
         wins over `artifact` when the build exports it.",
    ),
    REGION,
    ROLE_ARN,
];

pub const CODEBUILD: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "codebuild",
    doc: "Starts an AWS CodeBuild build and polls it.",
    fields: BUILD_CODEBUILD,
    at_least_one: Some((&["artifact", "artifact-variable"], "Baton needs one to name the build's artifact")),
    local_only: None,
    through_model: through_model::<CodeBuildBuild>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_codebuild::types::{BuildPhase, BuildPhaseType, ExportedEnvironmentVariable, PhaseContext};

    const ID: &str = "web:0b5c6a1e-1111-2222-3333-444455556666";
    const URL: &str = "https://example.test/build";

    fn provider(artifact: Option<&str>, variable: Option<&str>) -> CodeBuildProvider {
        let spec = CodeBuildBuild {
            project: "web".into(),
            env: BTreeMap::new(),
            artifact: artifact.map(str::to_owned),
            artifact_variable: variable.map(str::to_owned),
            access: AwsAccess::default(),
        };
        CodeBuildProvider::new(&spec, "catalog/web.yaml", AwsClients::new()).unwrap()
    }

    fn run(sha: Option<&str>) -> CodeBuildRun {
        CodeBuildRun {
            region: "eu-west-1".into(),
            role: None,
            release_id: ReleaseId("rel-web-1".into()),
            branch: "main".into(),
            sha: sha.map(str::to_owned),
        }
    }

    fn phase(kind: BuildPhaseType, status: Option<StatusType>, contexts: &[(&str, &str)]) -> BuildPhase {
        let mut phase = BuildPhase::builder().phase_type(kind).set_phase_status(status);
        for (code, message) in contexts {
            phase = phase.contexts(PhaseContext::builder().status_code(*code).message(*message).build());
        }
        phase.build()
    }

    fn build(status: StatusType, phases: Vec<BuildPhase>) -> Build {
        Build::builder()
            .id(ID)
            .arn(format!("arn:aws:codebuild:eu-west-1:210987654321:build/{ID}"))
            .project_name("web")
            .build_number(47)
            .build_status(status)
            .set_phases(Some(phases))
            .build()
    }

    #[test]
    fn every_status_maps_to_running_built_or_failed_with_the_phase_that_failed() {
        use BuildPhaseType as Phase;
        let provider = provider(Some("registry/web:{short-sha}-{build-number}"), None);
        let queued =
            build(StatusType::InProgress, vec![phase(Phase::Submitted, Some(StatusType::Succeeded), &[]), phase(Phase::Queued, None, &[])]);
        assert_eq!(provider.progress(&queued, &run(Some("0123456789")), URL), BuildProgress::Running);

        let done = build(StatusType::Succeeded, vec![phase(Phase::Build, Some(StatusType::Succeeded), &[])]);
        let expected = Artifact {
            reference: "registry/web:0123456-47".into(),
            sha: "0123456789".into(),
            branch: "main".into(),
            build_url: Some(URL.into()),
        };
        assert_eq!(provider.progress(&done, &run(Some("0123456789")), URL), BuildProgress::Succeeded { artifact: expected });

        let cases = [
            (StatusType::Failed, Phase::Build, "COMMAND_EXECUTION_ERROR", "Error while executing command: make. Reason: exit status 2"),
            (StatusType::Fault, Phase::Provisioning, "CLIENT_ERROR", "Failed to pull the image"),
            (StatusType::TimedOut, Phase::Build, "BUILD_TIMED_OUT", "Build has timed out."),
            (StatusType::Stopped, Phase::PreBuild, "BUILD_STOPPED", "Build was stopped by a user"),
        ];
        for (status, failing, code, message) in cases {
            let phases = vec![
                phase(Phase::DownloadSource, Some(StatusType::Succeeded), &[("", "")]),
                phase(failing.clone(), Some(status.clone()), &[(code, message)]),
                phase(Phase::Finalizing, Some(StatusType::Succeeded), &[]),
            ];
            let BuildProgress::Failed { reason } = provider.progress(&build(status.clone(), phases), &run(None), URL) else {
                panic!("{status:?} did not fail the build")
            };
            let expected = format!(
                "CodeBuild build {ID} (#47) {}: phase {} {}: {code}: {message}; see {URL}",
                status.as_str(),
                failing.as_str(),
                status.as_str()
            );
            assert_eq!(reason, expected);
        }

        let no_phase = build(StatusType::Fault, vec![]);
        let BuildProgress::Failed { reason } = provider.progress(&no_phase, &run(None), URL) else { panic!("a fault") };
        assert!(reason.contains("no phase says why"), "{reason}");
    }

    #[test]
    fn an_unknown_status_runs_until_the_build_is_complete() {
        let provider = provider(Some("web:{sha}"), None);
        let mut later = build(StatusType::from("PAUSED"), vec![]);
        assert_eq!(provider.progress(&later, &run(None), URL), BuildProgress::Running);
        later.build_complete = true;
        let BuildProgress::Failed { reason } = provider.progress(&later, &run(None), URL) else { panic!("a complete build") };
        assert!(reason.contains("ended PAUSED"), "{reason}");
    }

    #[test]
    fn the_exported_variable_wins_over_the_template_when_the_build_exports_it() {
        let exported = |value: &str| {
            let mut done = build(StatusType::Succeeded, vec![]);
            done.exported_environment_variables = Some(vec![ExportedEnvironmentVariable::builder().name("IMAGE_URI").value(value).build()]);
            done.resolved_source_version = Some("fedcba9876".into());
            done
        };
        let reference = |progress: BuildProgress| match progress {
            BuildProgress::Succeeded { artifact } => (artifact.reference, artifact.sha),
            other => panic!("{other:?}"),
        };
        let both = provider(Some("web:{short-sha}"), Some("IMAGE_URI"));
        let digest = "registry/web@sha256:abc";
        assert_eq!(reference(both.progress(&exported(digest), &run(None), URL)), (digest.to_owned(), "fedcba9876".to_owned()));
        // Exported empty, or not at all: the template names it.
        assert_eq!(reference(both.progress(&exported(" "), &run(None), URL)).0, "web:fedcba9");
        assert_eq!(
            reference(both.progress(&build(StatusType::Succeeded, vec![]), &run(None), URL)),
            ("web:unknown".into(), "unknown".into())
        );

        let only_variable = provider(None, Some("IMAGE_URI"));
        let BuildProgress::Failed { reason } = only_variable.progress(&build(StatusType::Succeeded, vec![]), &run(None), URL) else {
            panic!("a build without its artifact")
        };
        assert!(reason.contains("did not export IMAGE_URI (artifact-variable)") && reason.contains("exported-variables"), "{reason}");
    }

    #[test]
    fn bad_templates_and_foreign_handles_are_refused() {
        let spec = CodeBuildBuild {
            project: "web".into(),
            env: BTreeMap::new(),
            artifact: Some("web:{run-id}".into()),
            artifact_variable: None,
            access: AwsAccess::default(),
        };
        match CodeBuildProvider::new(&spec, "catalog/web.yaml", AwsClients::new()) {
            Err(ProviderError::Rejected { message, .. }) => {
                assert!(message.starts_with("catalog/web.yaml: extensions.baton.build.artifact: codebuild"), "{message}");
                assert!(message.contains("{build-number}"), "{message}");
            }
            other => panic!("expected Rejected, got {:?}", other.err()),
        }
        let foreign = RunHandle { provider: "buildkite".into(), id: "42".into(), url: None, state: serde_json::Value::Null };
        match run_of(&foreign) {
            Err(ProviderError::Rejected { message, .. }) => assert!(message.contains("'buildkite'"), "{message}"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }

    #[test]
    fn the_console_link_names_the_region_account_and_build() {
        let done = build(StatusType::Succeeded, vec![]);
        assert_eq!(
            console_url("eu-west-1", &done),
            "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/210987654321/projects/web/build/\
             web%3A0b5c6a1e-1111-2222-3333-444455556666/?region=eu-west-1"
        );
        assert_eq!(idempotency_token(&ReleaseId("rel-web-1".into())), "baton-rel-web-1");
        // The state stays small: it travels in Step Functions state.
        let state = serde_json::to_value(run(Some("0123456789abcdef0123456789abcdef01234567"))).unwrap();
        assert!(state.to_string().len() < 300, "{state}");
    }
}
