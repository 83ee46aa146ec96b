//! Event-driven waits: a release parked on a task token while a build runs, a wave rolls out or a
//! bake runs, and the provider events that resume it. The key recorded when a release parks is
//! the key a receiver computes from the provider's event, so an event finds its release (and only
//! it) without a scan.

use crate::release::RunHandle;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a parked release waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitKind {
    /// A CI run to finish.
    Build,
    /// A deployment (one target's rollout) to settle.
    Rollout,
    /// A bake to pass: an alarm or monitor entering ALARM ends it early.
    Bake,
}

/// One thing a provider reports on: a CI run, a deployment, an alarm or monitor. `provider` is
/// the catalog's provider name (`github-actions`, `codebuild`, `ecs`, `cloudwatch-alarm`, ...);
/// `id` is the id Baton kept for it (a [`RunHandle`]'s id, an alarm's name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitKey {
    pub kind: WaitKind,
    pub provider: String,
    pub id: String,
}

impl WaitKey {
    pub fn new(kind: WaitKind, provider: impl Into<String>, id: impl Into<String>) -> Self {
        Self { kind, provider: provider.into(), id: id.into() }
    }

    /// The key of a started run (a build, or one target's rollout).
    pub fn of_run(kind: WaitKind, run: &RunHandle) -> Self {
        Self::new(kind, run.provider.clone(), run.id.clone())
    }
}

impl fmt::Display for WaitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WaitKind::Build => "build",
            WaitKind::Rollout => "rollout",
            WaitKind::Bake => "bake",
        };
        write!(f, "{kind}:{}:{}", self.provider, self.id)
    }
}

/// What an event says happened to the thing its key names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "happened", content = "detail")]
pub enum Happened {
    /// Finished well: the build passed, the rollout completed.
    Succeeded,
    /// Finished badly, or an alarm or monitor entered ALARM: the provider's words why.
    Failed(String),
    /// Still under way (a build started, an alarm back to OK): nothing for a parked release to do.
    Progress,
}

/// One verified provider event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderEvent {
    pub key: WaitKey,
    pub happened: Happened,
    /// The provider's id for this delivery (a delivery header, an event id), or a digest of the
    /// body when it has none: a replayed delivery is recognised by it.
    pub delivery: String,
    /// When the provider says it happened.
    pub at: DateTime<Utc>,
}
