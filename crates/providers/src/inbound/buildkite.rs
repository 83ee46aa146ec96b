//! Buildkite's `build.finished` webhooks (a Notification Service webhook of the organization).
//! Its token is sent in one of two ways: signed, `X-Buildkite-Signature:
//! timestamp=<unix seconds>,signature=<hex HMAC-SHA256 of "<timestamp>.<body>">` (refused more
//! than 5 minutes from now), or plain, `X-Buildkite-Token`, compared in constant time. Signed is
//! the one to choose; a request carrying a signature is never let in on a token. The key is the
//! build's `organization/pipeline/number` (from its `url`), the id the `buildkite` provider keeps;
//! its state reads as the polls read it.

use super::{Keys, Timestamped, json, malformed, required, token, unauthenticated};
use crate::ci::Verdict;
use crate::ci::buildkite::{PROVIDER, run_id, verdict};
use crate::secrets::Secret;
use baton_domain::ports::{EventReceiver, InboundRefused, InboundRequest};
use baton_domain::waits::{Happened, ProviderEvent, WaitKey, WaitKind};
use chrono::{DateTime, Utc};
use serde::Deserialize;

const SIGNATURE: &str = "X-Buildkite-Signature";
const SIGNED: Timestamped = Timestamped { header: SIGNATURE, time: "timestamp", signature: "signature" };
const TOKEN: &str = "X-Buildkite-Token";
const EVENT: &str = "X-Buildkite-Event";

/// Receives the `buildkite` provider's build events.
#[derive(Debug)]
pub struct BuildkiteBuildEvents {
    keys: Keys,
}

impl BuildkiteBuildEvents {
    /// `secrets`: the webhooks' tokens (each `buildkite` block's `events-secret`).
    pub fn new(secrets: Vec<Secret>) -> Result<BuildkiteBuildEvents, String> {
        Ok(BuildkiteBuildEvents { keys: Keys::new(PROVIDER, secrets)? })
    }

    /// Checks `X-Buildkite-Signature`, else `X-Buildkite-Token`.
    fn authenticate(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<(), InboundRefused> {
        let Some(signature) = request.header(SIGNATURE) else {
            if request.header(TOKEN).is_none() {
                return Err(unauthenticated("missing X-Buildkite-Signature (or X-Buildkite-Token) header"));
            }
            return token(request, TOKEN, &self.keys);
        };
        SIGNED.check(signature, &request.body, &self.keys, now)?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct BuildEvent {
    event: String,
    build: Build,
}

#[derive(Deserialize)]
struct Build {
    number: u64,
    /// The build's API URL, `.../organizations/{org}/pipelines/{pipeline}/builds/{number}`.
    url: String,
    state: String,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
}

impl EventReceiver for BuildkiteBuildEvents {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn receive(&self, request: &InboundRequest, now: DateTime<Utc>) -> Result<Vec<ProviderEvent>, InboundRefused> {
        self.authenticate(request, now)?;
        let header_event = required(request, EVENT).ok();
        if !header_event.is_none_or(|event| event.starts_with("build.")) {
            // ping, job.*, agent.*: nothing a release waits for.
            return Ok(Vec::new());
        }
        let event: BuildEvent = json(&request.body, "a Buildkite build event (event, build.number, build.state)")?;
        let happened = match (event.event.as_str(), verdict(&event.build.state, event.build.blocked)) {
            ("build.finished", Verdict::Passed) => Happened::Succeeded,
            (_, Verdict::Failed(what)) => Happened::Failed(format!(
                "Buildkite build {} is '{}': {what}; see {}",
                event.build.number,
                event.build.state,
                event.build.web_url.as_deref().unwrap_or("its page on Buildkite")
            )),
            // build.scheduled, build.running, a blocked build: under way.
            _ => Happened::Progress,
        };
        let Some((organization, pipeline)) = pipeline_of(&event.build.url) else {
            return Err(malformed("build.url does not name the build's organization and pipeline"));
        };
        let key = WaitKey::new(WaitKind::Build, PROVIDER, run_id(organization, pipeline, event.build.number));
        let at = event.build.finished_at.unwrap_or(now);
        Ok(vec![ProviderEvent { key, happened, delivery: super::digest(&request.body), at }])
    }
}

/// The organization and pipeline slugs of a build's API URL.
fn pipeline_of(url: &str) -> Option<(&str, &str)> {
    let mut parts = url.split_once("/organizations/")?.1.split('/');
    let organization = parts.next().filter(|slug| !slug.is_empty())?;
    let pipeline = parts.next().filter(|segment| *segment == "pipelines").and_then(|_| parts.next()).filter(|slug| !slug.is_empty())?;
    Some((organization, pipeline))
}
