//! Deploys Lambda functions behind an alias: new code, a published version, then the alias
//! moved to it, all at once or first as a weighted canary that a later poll promotes.

use crate::clients::{AwsAccess, Placement, access_for};
use crate::clients::{AwsClients, region_of};
use crate::error::AwsError;
use async_trait::async_trait;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::operation::get_alias::GetAliasOutput;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use baton_domain::catalog::Seconds;
use baton_domain::ports::{DeployProgress, DeployRequest, Deployer, ProviderError, RunHandle};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

const PROVIDER: &str = "lambda";

/// How long `start` waits for new code to become publishable. Zip updates take a second or two;
/// when an image update takes longer, `start` says so as Unavailable and is retried.
const UPDATE_WAIT: Duration = Duration::from_secs(10);

pub struct LambdaDeployer {
    alias: String,
    canary: Option<LambdaCanary>,
    access: AwsAccess,
    placements: Vec<Placement>,
    clients: AwsClients,
}

/// What a run keeps in its handle: the version it put behind the alias, the one it replaced
/// (for a rollback), and when a canary ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LambdaRun {
    function: String,
    alias: String,
    region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    version: String,
    previous_version: String,
    /// Set while the new version takes only the canary's share: the first poll after it promotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    canary_until: Option<DateTime<Utc>>,
}

/// Where new code comes from: an S3 object (zip packages) or a container image.
#[derive(Debug, PartialEq, Eq)]
enum Code<'a> {
    S3 { bucket: &'a str, key: &'a str },
    Image(&'a str),
}

impl<'a> Code<'a> {
    /// `s3://bucket/key` is a zip in S3; anything else an image URI.
    fn parse(reference: &'a str) -> Result<Code<'a>, ProviderError> {
        let Some(location) = reference.strip_prefix("s3://") else {
            return Ok(Code::Image(reference));
        };
        match location.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Code::S3 { bucket, key }),
            _ => Err(ProviderError::rejected(format!("artifact {reference}: expected s3://<bucket>/<key>"))),
        }
    }
}

impl LambdaDeployer {
    /// Deploys to functions (the deploy targets) behind `spec.alias`, each with its own region
    /// and role when a placement names one.
    pub fn new(spec: &LambdaDeploy, clients: AwsClients) -> LambdaDeployer {
        LambdaDeployer {
            alias: spec.alias.clone(),
            canary: spec.canary.clone(),
            access: spec.access.clone(),
            placements: spec.placements.clone(),
            clients,
        }
    }

    /// Updates the function's code to `reference`, waits until it is ready, publishes it and
    /// returns the version.
    async fn publish(&self, lambda: &aws_sdk_lambda::Client, function: &str, reference: &str) -> Result<String, ProviderError> {
        let context = format!("Lambda function {function}");
        let call = match Code::parse(reference)? {
            Code::S3 { bucket, key } => lambda.update_function_code().function_name(function).s3_bucket(bucket).s3_key(key),
            Code::Image(uri) => lambda.update_function_code().function_name(function).image_uri(uri),
        };
        let updated = call.send().await.map_err(|e| lambda_error(AwsError::from_sdk("UpdateFunctionCode", e), &context))?;
        wait_until_updated(lambda, function).await?;
        let mut publish = lambda.publish_version().function_name(function).description(format!("baton: {reference}"));
        // Publishes the code this call uploaded, or fails if another update came in between.
        if let Some(sha) = updated.code_sha256 {
            publish = publish.code_sha256(sha);
        }
        let published = publish.send().await.map_err(|e| lambda_error(AwsError::from_sdk("PublishVersion", e), &context))?;
        published.version.ok_or_else(|| ProviderError::rejected(format!("{context}: PublishVersion returned no version")))
    }

    async fn alias(&self, lambda: &aws_sdk_lambda::Client, function: &str, region: &str) -> Result<GetAliasOutput, ProviderError> {
        lambda.get_alias().function_name(function).name(&self.alias).send().await.map_err(|e| {
            lambda_error(AwsError::from_sdk("GetAlias", e), &format!("alias {} of Lambda function {function} ({region})", self.alias))
        })
    }
}

#[async_trait]
impl Deployer for LambdaDeployer {
    async fn start(&self, request: &DeployRequest) -> Result<RunHandle, ProviderError> {
        let function = request.target.as_str();
        let access = access_for(function, &self.access, &self.placements);
        let config = self.clients.config_for(&access).await?;
        let region = region_of(&config);
        let lambda = aws_sdk_lambda::Client::new(&config);
        let current = self.alias(&lambda, function, &region).await?;
        let previous = current
            .function_version
            .clone()
            .ok_or_else(|| ProviderError::rejected(format!("alias {} of Lambda function {function} names no version", self.alias)))?;

        let replaced = request.undoes.as_ref().and_then(|run| replaced_version(run, function, &self.alias));
        let (version, canary) = match replaced {
            // Put back the version the forward run replaced; it is still published.
            Some(replaced) if request.rollback => (replaced, None),
            _ if request.artifact.reference.trim().is_empty() => {
                return Err(ProviderError::rejected(if request.rollback {
                    format!(
                        "cannot roll back Lambda function {function}: no earlier artifact, and a deploy cannot remove the \
                         function's code (point alias {} at a version by hand)",
                        self.alias
                    )
                } else {
                    format!("nothing to deploy to Lambda function {function}: the artifact reference is empty")
                }));
            }
            _ => {
                let version = self.publish(&lambda, function, &request.artifact.reference).await?;
                // A rollback goes all the way at once; so does a version the alias already serves
                // (publishing unchanged code returns the latest version), and an alias on $LATEST,
                // which cannot carry weighted routing.
                let canary = self.canary.as_ref().filter(|_| !request.rollback && version != previous && previous != "$LATEST");
                (version, canary)
            }
        };

        let routing = canary.map(|c| HashMap::from([(version.clone(), f64::from(c.weight) / 100.0)])).unwrap_or_default();
        let primary = if canary.is_some() { &previous } else { &version };
        lambda
            .update_alias()
            .function_name(function)
            .name(&self.alias)
            .function_version(primary)
            .routing_config(AliasRoutingConfiguration::builder().set_additional_version_weights(Some(routing)).build())
            .send()
            .await
            .map_err(|e| {
                lambda_error(AwsError::from_sdk("UpdateAlias", e), &format!("alias {} of Lambda function {function}", self.alias))
            })?;

        let run = LambdaRun {
            function: function.to_string(),
            alias: self.alias.clone(),
            region,
            role: access.role_arn.clone(),
            version,
            previous_version: previous,
            canary_until: canary.map(|c| hold_end(Utc::now(), c.hold.0)),
        };
        Ok(run.handle())
    }

    async fn poll(&self, handle: &RunHandle) -> Result<DeployProgress, ProviderError> {
        let run: LambdaRun = serde_json::from_value(handle.state.clone()).map_err(|err| {
            ProviderError::rejected(format!("run {} is not a Lambda deploy this version of Baton started", handle.id)).caused_by(err)
        })?;
        let config = self.clients.config_for(&AwsAccess { region: Some(run.region.clone()), role_arn: run.role.clone() }).await?;
        let lambda = aws_sdk_lambda::Client::new(&config);
        let alias = self.alias(&lambda, &run.function, &run.region).await?;
        let context = format!("alias {} of Lambda function {}", run.alias, run.function);
        match step(&run, &alias, Utc::now()) {
            Step::Report(progress) => Ok(progress),
            Step::Promote => {
                lambda
                    .update_alias()
                    .function_name(&run.function)
                    .name(&run.alias)
                    .function_version(&run.version)
                    .routing_config(AliasRoutingConfiguration::builder().set_additional_version_weights(Some(HashMap::new())).build())
                    .send()
                    .await
                    .map_err(|e| lambda_error(AwsError::from_sdk("UpdateAlias", e), &context))?;
                Ok(DeployProgress::Succeeded)
            }
        }
    }

    /// No event names a Lambda run: the alias update is over when `start` answers, and a
    /// canary's promotion is a poll's doing. Its waves are polled, never parked.
    fn wait_key(&self, _: &RunHandle) -> Option<baton_domain::waits::WaitKey> {
        None
    }
}

impl LambdaRun {
    fn handle(&self) -> RunHandle {
        RunHandle {
            provider: PROVIDER.into(),
            id: format!("{}:{}", self.function, self.version),
            url: Some(format!(
                "https://{region}.console.aws.amazon.com/lambda/home?region={region}#/functions/{function}/aliases/{alias}",
                region = self.region,
                function = self.function,
                alias = self.alias
            )),
            state: serde_json::to_value(self).expect("a LambdaRun is plain JSON"),
        }
    }
}

/// What a poll does next.
#[derive(Debug, PartialEq)]
enum Step {
    Report(DeployProgress),
    /// The canary held long enough: move all traffic to the new version.
    Promote,
}

fn step(run: &LambdaRun, alias: &GetAliasOutput, now: DateTime<Utc>) -> Step {
    let serving = alias.function_version().unwrap_or("none");
    let weights = alias.routing_config().and_then(|r| r.additional_version_weights()).cloned().unwrap_or_default();
    let fully_ours = serving == run.version && weights.is_empty();
    match run.canary_until {
        // Also after a promotion, should a retried poll come back.
        _ if fully_ours => Step::Report(DeployProgress::Succeeded),
        Some(until) if serving == run.previous_version && weights.contains_key(&run.version) => {
            if now < until {
                Step::Report(DeployProgress::Running)
            } else {
                Step::Promote
            }
        }
        _ => Step::Report(DeployProgress::Failed {
            reason: format!(
                "alias {} of {} serves version {serving}{}, not version {}: another deploy changed it",
                run.alias,
                run.function,
                describe_weights(&weights),
                run.version
            ),
        }),
    }
}

/// `seconds` after `now`, saturating (a hold is never meant to end before it began).
fn hold_end(now: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    i64::try_from(seconds)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|hold| now.checked_add_signed(hold))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn describe_weights(weights: &HashMap<String, f64>) -> String {
    let mut parts: Vec<String> = weights.iter().map(|(v, w)| format!("{:.0} % on version {v}", w * 100.0)).collect();
    parts.sort();
    if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
}

/// The version a forward run of this function and alias replaced.
fn replaced_version(run: &RunHandle, function: &str, alias: &str) -> Option<String> {
    if run.provider != PROVIDER {
        return None;
    }
    let run: LambdaRun = serde_json::from_value(run.state.clone()).ok()?;
    (run.function == function && run.alias == alias && !run.previous_version.is_empty()).then_some(run.previous_version)
}

/// Waits (the SDK's `function_updated` waiter) until the function's last update succeeded;
/// Rejected when it failed, Unavailable when it is still going after [`UPDATE_WAIT`].
async fn wait_until_updated(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<(), ProviderError> {
    let context = format!("Lambda function {function}");
    match lambda.wait_until_function_updated().function_name(function).wait(UPDATE_WAIT).await {
        Ok(_) => Ok(()),
        Err(WaiterError::FailureState(failed)) => {
            let reason = failed.final_poll().as_result().ok().and_then(|configuration| configuration.last_update_status_reason());
            Err(ProviderError::rejected(format!("{context}: the code update failed: {}", reason.unwrap_or("no reason given"))))
        }
        Err(WaiterError::ExceededMaxWait(_)) => Err(ProviderError::unavailable(format!(
            "{context}: the code update is still in progress after {UPDATE_WAIT:?}; the deploy will be retried"
        ))),
        Err(WaiterError::OperationFailed(failed)) => {
            Err(lambda_error(AwsError::from_sdk("GetFunctionConfiguration", failed.into_error()), &context))
        }
        Err(other) => Err(ProviderError::unavailable(format!("{context}: waiting for the code update: {other}"))),
    }
}

/// Lambda's "an update is in progress" is worth retrying, unlike most conflicts.
fn lambda_error(err: AwsError, context: &str) -> ProviderError {
    match err {
        AwsError::Rejected { operation, ref code, ref message } if code == "ResourceConflictException" => {
            AwsError::Unavailable { operation, message: format!("{code}: {message}") }.for_provider(context)
        }
        err => err.for_provider(context),
    }
}

// ------------------------------------------------------------------ catalog block

use crate::clients::{PLACEMENTS, REGION, ROLE_ARN};
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Shape, Slot, field, required, shape, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LambdaDeploy {
    /// The alias that serves traffic (`live`).
    pub alias: String,
    /// Shift part of the traffic first, then all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<LambdaCanary>,
    #[serde(flatten)]
    pub access: AwsAccess,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
}

/// The weighted step of a Lambda deploy: `weight` percent on the new version for `hold`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LambdaCanary {
    pub weight: u32,
    pub hold: Seconds,
}

/// The longest canary hold: the hold runs inside the wave's deploy, which fails at its
/// `deploy-timeout` (an hour by default), so a longer hold could never be promoted. Longer
/// observation belongs in the wave's `bake`.
pub const MAX_CANARY_HOLD: u64 = 30 * 60;

const LAMBDA_CANARY: Shape = shape(&[
    required(
        "weight",
        Kind::Between { min: 1, max: 99 },
        "Percent of the traffic on the new version during `hold` (1-99: 100 is no canary step).",
    ),
    required("hold", Kind::Duration { min: 1, max: MAX_CANARY_HOLD }, "How long the weighted step lasts before all traffic moves."),
]);

const DEPLOY_LAMBDA: &[Field] = &[
    required("alias", Kind::Text, "The alias that serves traffic (`live`); the targets are function names or ARNs."),
    field("canary", Kind::Object(&LAMBDA_CANARY), "Shift `weight` percent first, then all the traffic."),
    REGION,
    ROLE_ARN,
    PLACEMENTS,
];

pub const LAMBDA: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "lambda",
    doc: "Shifts AWS Lambda aliases to new versions.",
    fields: DEPLOY_LAMBDA,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<LambdaDeploy>,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn run(canary_until: Option<DateTime<Utc>>) -> LambdaRun {
        LambdaRun {
            function: "checkout".into(),
            alias: "live".into(),
            region: "eu-west-1".into(),
            role: None,
            version: "8".into(),
            previous_version: "7".into(),
            canary_until,
        }
    }

    fn alias(version: &str, weights: &[(&str, f64)]) -> GetAliasOutput {
        let weights: HashMap<String, f64> = weights.iter().map(|(v, w)| (v.to_string(), *w)).collect();
        GetAliasOutput::builder()
            .name("live")
            .function_version(version)
            .set_routing_config(
                (!weights.is_empty()).then(|| AliasRoutingConfiguration::builder().set_additional_version_weights(Some(weights)).build()),
            )
            .build()
    }

    #[test]
    fn a_lambda_run_is_never_parked_on() {
        let config = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let spec = LambdaDeploy {
            alias: "live".into(),
            canary: Some(LambdaCanary { weight: 10, hold: Seconds(300) }),
            access: AwsAccess::default(),
            placements: vec![],
        };
        let deployer = LambdaDeployer::new(&spec, AwsClients::with_base(config));
        assert_eq!(deployer.wait_key(&run(None).handle()), None);
        assert_eq!(deployer.wait_key(&run(Some(Utc::now())).handle()), None, "a canary is promoted by a poll");
    }

    #[test]
    fn s3_references_are_zips_and_others_images() {
        assert_eq!(Code::parse("s3://builds/checkout/abc123.zip").unwrap(), Code::S3 { bucket: "builds", key: "checkout/abc123.zip" });
        assert_eq!(
            Code::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/checkout@sha256:ab").unwrap(),
            Code::Image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/checkout@sha256:ab")
        );
        for bad in ["s3://builds", "s3://builds/", "s3:///key"] {
            assert!(
                matches!(Code::parse(bad), Err(ProviderError::Rejected { message: m, .. }) if m.contains("s3://<bucket>/<key>")),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_a_canary_it_succeeds_when_the_alias_serves_the_version() {
        assert_eq!(step(&run(None), &alias("8", &[]), Utc::now()), Step::Report(DeployProgress::Succeeded));
        match step(&run(None), &alias("9", &[]), Utc::now()) {
            Step::Report(DeployProgress::Failed { reason }) => {
                assert!(reason.contains("serves version 9") && reason.contains("not version 8"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_canary_runs_until_its_hold_ends_then_is_promoted() {
        let until = Utc::now();
        let canary = alias("7", &[("8", 0.1)]);
        assert_eq!(step(&run(Some(until)), &canary, until - chrono::Duration::seconds(1)), Step::Report(DeployProgress::Running));
        assert_eq!(step(&run(Some(until)), &canary, until), Step::Promote);
        // A poll retried after the promotion landed.
        assert_eq!(step(&run(Some(until)), &alias("8", &[]), until), Step::Report(DeployProgress::Succeeded));
        match step(&run(Some(until)), &alias("7", &[("9", 0.2)]), until) {
            Step::Report(DeployProgress::Failed { reason }) => assert!(reason.contains("20 % on version 9"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_handle_is_small_and_a_rollback_finds_the_replaced_version() {
        let handle = run(Some(Utc::now())).handle();
        assert_eq!(handle.id, "checkout:8");
        assert!(handle.state.to_string().len() < 300, "{}", handle.state);
        assert_eq!(replaced_version(&handle, "checkout", "live").as_deref(), Some("7"));
        assert_eq!(replaced_version(&handle, "checkout", "beta"), None);
        assert_eq!(replaced_version(&RunHandle { provider: "ecs".into(), ..handle }, "checkout", "live"), None);
    }

    #[test]
    fn an_update_in_progress_is_retryable() {
        let conflict =
            AwsError::Rejected { operation: "UpdateFunctionCode", code: "ResourceConflictException".into(), message: "in progress".into() };
        assert!(matches!(lambda_error(conflict, "Lambda function checkout"), ProviderError::Unavailable { .. }));
        let missing = AwsError::Rejected { operation: "GetAlias", code: "ResourceNotFoundException".into(), message: "no alias".into() };
        assert!(matches!(lambda_error(missing, "alias live"), ProviderError::Rejected { message: m, .. } if m.contains("alias live")));
    }
}
