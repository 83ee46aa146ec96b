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
/// the catalog's provider name (`github-actions`, `codebuild`, `ecs`, `cloudwatch`, ...);
/// `id` is the id Baton kept for it (a [`RunHandle`]'s id; for a bake, what the gate's provider
/// keys its alarm or monitor by).
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

/// A release parked on `key` with the task token that resumes it, until `until` at the latest
/// (its task's timeout: the safety net's next poll, or the bake's end).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    pub key: WaitKey,
    pub release: crate::release::ReleaseId,
    pub token: crate::release::TaskToken,
    pub until: DateTime<Utc>,
}

/// What a batch of events did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The releases resumed, each with the key whose event resumed it.
    pub resumed: Vec<(crate::release::ReleaseId, WaitKey)>,
    /// Events that changed nothing: progress, nobody waiting (late, duplicated, for a release
    /// that is not parked), or a task that had already ended.
    pub ignored: usize,
}

/// Why a batch of events could not all be delivered: the caller (EventBridge, a webhook's
/// sender) should send it again. Waits whose tokens could not be told are parked again first,
/// so a second delivery finds them.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] crate::ports::StoreError),
    #[error("{0} parked task(s) could not be told and wait again: {1}")]
    NotTold(usize, String),
}

/// The stable error name a parked task fails with when its event says the thing failed: the
/// same names the polling tasks fail with, so the definition's Catch treats both alike.
pub fn failure_name(kind: WaitKind) -> crate::error::ErrorName {
    use crate::error::ErrorName;
    match kind {
        WaitKind::Build => ErrorName::BuildFailed,
        WaitKind::Rollout => ErrorName::DeployFailed,
        WaitKind::Bake => ErrorName::HealthCheckFailed,
    }
}

/// Delivers verified `events`: each takes the waits parked on its key and answers their tokens
/// (succeeded: success; failed: failure under [`failure_name`]). A resumed task does not trust
/// the event's word: the definition polls or samples the provider once before it moves on, so an
/// event that lies, arrives out of order or comes twice can at most cost one extra look.
/// Progress, an event nobody waits for and a token whose task has ended change nothing and are
/// logged. A token that could not be told for a passing reason is parked again and the batch
/// fails, for its sender to retry.
pub async fn deliver(
    events: &[ProviderEvent],
    registry: &dyn crate::ports::WaitRegistry,
    tokens: &dyn crate::ports::TaskTokens,
    now: DateTime<Utc>,
) -> Result<Delivered, DeliveryError> {
    use crate::ports::ProviderError;
    let mut delivered = Delivered::default();
    let mut untold = Vec::new();
    for event in events {
        let key = &event.key;
        if event.happened == Happened::Progress {
            tracing::info!(key = %key, delivery = %event.delivery, "provider event: still under way, nothing to resume");
            delivered.ignored += 1;
            continue;
        }
        let parked = registry.take(key, now).await?;
        if parked.is_empty() {
            tracing::info!(key = %key, delivery = %event.delivery, "provider event: no release waits for it (late, duplicated or not ours)");
            delivered.ignored += 1;
            continue;
        }
        for wait in parked {
            let told = match &event.happened {
                Happened::Failed(why) => tokens.fail(&wait.token, failure_name(key.kind), why).await,
                _ => tokens.succeed(&wait.token, &serde_json::json!({ "event": key.to_string(), "delivery": event.delivery })).await,
            };
            match told {
                Ok(()) => {
                    tracing::info!(key = %key, release = %wait.release, delivery = %event.delivery, "provider event resumed the release");
                    delivered.resumed.push((wait.release.clone(), key.clone()));
                }
                Err(ProviderError::Rejected { message, .. }) => {
                    tracing::info!(key = %key, release = %wait.release, delivery = %event.delivery, %message, "provider event: the parked task had already ended");
                    delivered.ignored += 1;
                }
                Err(err) => {
                    tracing::warn!(key = %key, release = %wait.release, delivery = %event.delivery, error = %err, "provider event: the parked task could not be told; it waits again");
                    untold.push((wait, err));
                }
            }
        }
    }
    let Some((_, first)) = untold.first() else { return Ok(delivered) };
    let first = first.to_string();
    for (wait, _) in &untold {
        registry.park(wait).await?;
    }
    Err(DeliveryError::NotTold(untold.len(), first))
}

/// A callback's body is refused past this size before its signature is checked.
pub const MAX_CALLBACK_BYTES: usize = 256 * 1024;

/// The signed receivers of one door (the provider-events function's URL, `baton`'s loopback
/// listener), by the provider name that starts their path: `/<provider>[/...]`.
#[derive(Default)]
pub struct Receivers(pub Vec<Box<dyn crate::ports::EventReceiver>>);

impl Receivers {
    fn for_path(&self, path: &str) -> Option<&dyn crate::ports::EventReceiver> {
        let provider = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        self.0.iter().find(|receiver| receiver.provider() == provider).map(Box::as_ref)
    }

    /// The paths served, `/<provider>` each, for messages.
    pub fn paths(&self) -> Vec<String> {
        self.0.iter().map(|receiver| format!("/{}", receiver.provider())).collect()
    }
}

/// How a door answers a callback: an HTTP status and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackAnswer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl CallbackAnswer {
    /// `{"message": ...}`.
    pub fn message(status: u16, message: impl Into<String>) -> CallbackAnswer {
        CallbackAnswer { status, body: serde_json::json!({ "message": message.into() }) }
    }
}

/// Why a callback was not read into events.
#[derive(Debug)]
pub enum NotRead {
    /// No receiver serves the path's provider.
    NoReceiver,
    /// The receiver refused the request: unsigned, forged or stale, or signed but unreadable.
    Refused(crate::ports::InboundRefused),
}

impl NotRead {
    /// Whether receivers read again might read the request: a provider added, a secret rotated
    /// since they were read.
    pub fn calls_for_a_refresh(&self) -> bool {
        matches!(self, NotRead::NoReceiver | NotRead::Refused(crate::ports::InboundRefused::Unauthenticated(_)))
    }

    /// 404 for a path no receiver serves (naming those that are), 401 for an unsigned, forged
    /// or stale request (logged), 400 for a signed one that does not read.
    pub fn answer(&self, receivers: &Receivers, path: &str) -> CallbackAnswer {
        use crate::ports::InboundRefused;
        match self {
            NotRead::NoReceiver => {
                let known = receivers.paths();
                let known = if known.is_empty() { "none is registered here".to_owned() } else { known.join(", ") };
                CallbackAnswer::message(
                    404,
                    format!(
                        "no provider receives callbacks at {path}: receivers here: {known} (docs/events.md says how to point a provider at Baton)"
                    ),
                )
            }
            NotRead::Refused(refused @ InboundRefused::Unauthenticated(_)) => {
                tracing::warn!(%path, %refused, "callback refused");
                CallbackAnswer::message(401, refused.to_string())
            }
            NotRead::Refused(refused) => CallbackAnswer::message(400, refused.to_string()),
        }
    }
}

/// Checks and reads one provider callback (its body already bounded by [`MAX_CALLBACK_BYTES`])
/// with the receiver its path names.
pub fn read_callback(
    receivers: &Receivers,
    request: &crate::ports::InboundRequest,
    now: DateTime<Utc>,
) -> Result<Vec<ProviderEvent>, NotRead> {
    let receiver = receivers.for_path(&request.path).ok_or(NotRead::NoReceiver)?;
    receiver.receive(request, now).map_err(NotRead::Refused)
}

/// [`deliver`]s a read callback's events: 202 with how many releases it resumed, or 503 when a
/// parked task could not be told (the provider sends it again; its waits are parked again).
pub async fn answer_events(
    events: &[ProviderEvent],
    registry: &dyn crate::ports::WaitRegistry,
    tokens: &dyn crate::ports::TaskTokens,
    now: DateTime<Utc>,
) -> CallbackAnswer {
    match deliver(events, registry, tokens, now).await {
        Ok(delivered) => {
            CallbackAnswer { status: 202, body: serde_json::json!({ "resumed": delivered.resumed.len(), "ignored": delivered.ignored }) }
        }
        Err(err) => CallbackAnswer::message(503, err.to_string()),
    }
}

/// Answers one provider callback: [`read_callback`], then [`answer_events`], or why it was not read.
pub async fn answer_callback(
    receivers: &Receivers,
    request: &crate::ports::InboundRequest,
    registry: &dyn crate::ports::WaitRegistry,
    tokens: &dyn crate::ports::TaskTokens,
    now: DateTime<Utc>,
) -> CallbackAnswer {
    match read_callback(receivers, request, now) {
        Ok(events) => answer_events(&events, registry, tokens, now).await,
        Err(not_read) => not_read.answer(receivers, &request.path),
    }
}

/// The keys a bake parks on: every key of every gate, when each gate declares keys
/// ([`crate::ports::HealthGate::bake_keys`]). `None` when any gate can only be sampled (or
/// declares none, or there is no gate): that wave keeps sampling at its interval. Which gate
/// parks on which keys is its provider's rule, so the domain names no provider here.
pub async fn bake_keys(gates: &[Box<dyn crate::ports::HealthGate>]) -> Result<Option<Vec<WaitKey>>, crate::ports::ProviderError> {
    let mut keys = Vec::new();
    for gate in gates {
        match gate.bake_keys().await? {
            Some(own) if !own.is_empty() => keys.extend(own),
            _ => return Ok(None),
        }
    }
    Ok((!keys.is_empty()).then_some(keys))
}

/// How long a bake that has `rest` seconds to run parks: until its end, or until the safety
/// net's next sample if that comes first. `None` once the bake is over (nothing to wait for).
pub fn bake_park_seconds(safety_net: u64, rest: u64) -> Option<u64> {
    (rest > 0).then(|| rest.min(safety_net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorName;
    use crate::ports::{ProviderError, StoreError, TaskTokens, WaitRegistry};
    use crate::release::{ReleaseId, TaskToken};
    use async_trait::async_trait;
    use chrono::TimeZone;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Memory(Mutex<Vec<Parked>>);

    #[async_trait]
    impl WaitRegistry for Memory {
        async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
            let mut waits = self.0.lock().unwrap();
            waits.retain(|w| !(w.key == wait.key && w.release == wait.release));
            waits.push(wait.clone());
            Ok(())
        }
        async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
            let mut waits = self.0.lock().unwrap();
            let (taken, kept) = waits.drain(..).partition(|w| &w.key == key);
            *waits = kept;
            Ok(taken.into_iter().filter(|w: &Parked| w.until > now).collect())
        }
    }

    /// Tokens as a task table: a token is answerable once; `down` makes every answer a passing failure.
    #[derive(Default)]
    struct Table {
        waiting: Mutex<Vec<String>>,
        told: Mutex<Vec<String>>,
        down: bool,
    }

    impl Table {
        fn answer(&self, token: &TaskToken, what: String) -> Result<(), ProviderError> {
            if self.down {
                return Err(ProviderError::unavailable("states unreachable"));
            }
            let mut waiting = self.waiting.lock().unwrap();
            let Some(at) = waiting.iter().position(|t| t == token.expose()) else {
                return Err(ProviderError::rejected("TaskTimedOut"));
            };
            waiting.remove(at);
            self.told.lock().unwrap().push(format!("{} {what}", token.expose()));
            Ok(())
        }
    }

    #[async_trait]
    impl TaskTokens for Table {
        async fn succeed(&self, token: &TaskToken, _: &serde_json::Value) -> Result<(), ProviderError> {
            self.answer(token, "succeeded".into())
        }
        async fn fail(&self, token: &TaskToken, error: ErrorName, cause: &str) -> Result<(), ProviderError> {
            self.answer(token, format!("failed {} ({cause})", error.as_str()))
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, minute, 0).unwrap()
    }

    fn build(id: &str) -> WaitKey {
        WaitKey::new(WaitKind::Build, "codebuild", id)
    }

    fn parked(key: &WaitKey, release: &str, token: &str) -> Parked {
        Parked { key: key.clone(), release: ReleaseId(release.into()), token: TaskToken(token.into()), until: at(30) }
    }

    fn event(key: &WaitKey, happened: Happened, delivery: &str) -> ProviderEvent {
        ProviderEvent { key: key.clone(), happened, delivery: delivery.into(), at: at(10) }
    }

    async fn setup(waits: &[Parked], live: &[&str]) -> (Memory, Table) {
        let registry = Memory::default();
        for wait in waits {
            registry.park(wait).await.unwrap();
        }
        let tokens = Table { waiting: Mutex::new(live.iter().map(|t| t.to_string()).collect()), ..Table::default() };
        (registry, tokens)
    }

    #[tokio::test]
    async fn each_event_answers_the_releases_parked_on_its_key_and_no_other() {
        let alarm = WaitKey::new(WaitKind::Bake, "cloudwatch", "api-5xx");
        let cases: Vec<(&str, Vec<ProviderEvent>, Vec<&str>, usize)> = vec![
            ("a finished build succeeds its release", vec![event(&build("b-1"), Happened::Succeeded, "d1")], vec!["t1 succeeded"], 0),
            (
                "a failed build fails it as Baton.BuildFailed",
                vec![event(&build("b-1"), Happened::Failed("tests failed".into()), "d1")],
                vec!["t1 failed Baton.BuildFailed (tests failed)"],
                0,
            ),
            (
                "an alarm fails every bake parked on it",
                vec![event(&alarm, Happened::Failed("api-5xx in ALARM".into()), "d1")],
                vec!["t3 failed Baton.HealthCheckFailed (api-5xx in ALARM)", "t4 failed Baton.HealthCheckFailed (api-5xx in ALARM)"],
                0,
            ),
            ("progress resumes nothing", vec![event(&build("b-1"), Happened::Progress, "d1")], vec![], 1),
            ("an event for a build nobody waits for changes nothing", vec![event(&build("b-9"), Happened::Succeeded, "d1")], vec![], 1),
            (
                "a duplicated delivery is told once",
                vec![event(&build("b-2"), Happened::Succeeded, "d1"), event(&build("b-2"), Happened::Succeeded, "d1")],
                vec!["t2 succeeded"],
                1,
            ),
        ];
        for (case, events, told, ignored) in cases {
            let waits = [
                parked(&build("b-1"), "r1", "t1"),
                parked(&build("b-2"), "r2", "t2"),
                parked(&alarm, "r3", "t3"),
                parked(&alarm, "r4", "t4"),
            ];
            let (registry, tokens) = setup(&waits, &["t1", "t2", "t3", "t4"]).await;
            let delivered = deliver(&events, &registry, &tokens, at(10)).await.unwrap();
            assert_eq!(*tokens.told.lock().unwrap(), told, "{case}");
            assert_eq!(delivered.ignored, ignored, "{case}");
            assert_eq!(delivered.resumed.len(), told.len(), "{case}");
        }
    }

    #[tokio::test]
    async fn a_wait_whose_task_ended_or_expired_changes_nothing() {
        let key = build("b-1");
        let expired = Parked { until: at(5), ..parked(&key, "r2", "t2") };
        let (registry, tokens) = setup(&[parked(&key, "r1", "t1"), expired], &["t2"]).await;

        let delivered = deliver(&[event(&key, Happened::Succeeded, "d1")], &registry, &tokens, at(10)).await.unwrap();

        assert_eq!((delivered.resumed.len(), delivered.ignored), (0, 1), "t1's task ended; t2's wait expired before the event");
        assert!(tokens.told.lock().unwrap().is_empty());
        assert!(registry.0.lock().unwrap().is_empty(), "both waits are gone");
    }

    #[tokio::test]
    async fn parking_again_replaces_the_release_s_earlier_token() {
        let key = build("b-1");
        let (registry, tokens) = setup(&[parked(&key, "r1", "old"), parked(&key, "r1", "new")], &["old", "new"]).await;

        deliver(&[event(&key, Happened::Succeeded, "d1")], &registry, &tokens, at(10)).await.unwrap();

        assert_eq!(*tokens.told.lock().unwrap(), ["new succeeded"]);
    }

    #[tokio::test]
    async fn a_token_that_cannot_be_told_now_waits_again_and_the_batch_fails() {
        let key = build("b-1");
        let (registry, mut tokens) = setup(&[parked(&key, "r1", "t1")], &["t1"]).await;
        tokens.down = true;

        let failed = deliver(&[event(&key, Happened::Succeeded, "d1")], &registry, &tokens, at(10)).await.unwrap_err();

        assert!(matches!(failed, DeliveryError::NotTold(1, _)), "{failed}");
        tokens.down = false;
        let delivered = deliver(&[event(&key, Happened::Succeeded, "d1")], &registry, &tokens, at(11)).await.unwrap();
        assert_eq!(delivered.resumed, [(ReleaseId("r1".into()), key)], "the sender's retry finds it");
    }

    /// A gate declaring `keys` (`None`: sample-only), or failing to say.
    struct Keyed(Result<Option<Vec<&'static str>>, ()>);

    #[async_trait]
    impl crate::ports::HealthGate for Keyed {
        fn describe(&self) -> String {
            "a keyed gate".into()
        }
        async fn sample(&self, _: &crate::ports::HealthRequest) -> Result<crate::ports::GateReading, ProviderError> {
            Err(ProviderError::rejected("not sampled here"))
        }
        async fn bake_keys(&self) -> Result<Option<Vec<WaitKey>>, ProviderError> {
            let keys = self.0.clone().map_err(|()| ProviderError::unavailable("STS unreachable"))?;
            Ok(keys.map(|ids| ids.into_iter().map(|id| WaitKey::new(WaitKind::Bake, "alarm", id)).collect()))
        }
    }

    fn keyed(keys: Option<&[&'static str]>) -> Box<dyn crate::ports::HealthGate> {
        Box::new(Keyed(Ok(keys.map(<[_]>::to_vec))))
    }

    #[tokio::test]
    async fn a_bake_parks_only_when_every_gate_declares_keys() {
        let keys = bake_keys(&[keyed(Some(&["a"])), keyed(Some(&["b", "c"]))]).await.unwrap().unwrap();
        assert_eq!(keys.iter().map(ToString::to_string).collect::<Vec<_>>(), ["bake:alarm:a", "bake:alarm:b", "bake:alarm:c"]);
        let cases: [(&str, Vec<Box<dyn crate::ports::HealthGate>>); 3] = [
            ("a sample-only gate beside a keyed one", vec![keyed(Some(&["a"])), keyed(None)]),
            ("a gate declaring no key would never be woken", vec![keyed(Some(&["a"])), keyed(Some(&[]))]),
            ("no gate, no event", vec![]),
        ];
        for (case, gates) in cases {
            assert_eq!(bake_keys(&gates).await.unwrap(), None, "{case}");
        }
        let unknown: Vec<Box<dyn crate::ports::HealthGate>> = vec![keyed(Some(&["a"])), Box::new(Keyed(Err(())))];
        assert!(bake_keys(&unknown).await.is_err(), "a gate that cannot say now is not taken for sample-only");
    }

    #[test]
    fn a_bake_parks_until_its_end_or_the_safety_net() {
        assert_eq!(bake_park_seconds(300, 600), Some(300));
        assert_eq!(bake_park_seconds(300, 120), Some(120));
        assert_eq!(bake_park_seconds(300, 0), None);
    }
}
