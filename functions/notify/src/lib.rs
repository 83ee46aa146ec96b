//! notify: tells the team where the release stands, through every notifier the service
//! configures (console, Slack). Each notifier keeps its own state (a Slack message's
//! channel and ts) in the release record, so the next stage updates the same message.

use baton_domain::catalog::{ApprovalSpec, ServiceEntry};
use baton_domain::error::{ErrorName, TaskError, chain_text};
use baton_domain::flow::{Done, NotifyEvent, NotifyRequest, OutcomeStatus};
use baton_domain::ports::{Notification, Notifier, ProviderError};
use baton_domain::redact;
use baton_domain::release::{EventKind, Release, Stage, WaveStatus};
use baton_domain::retry::{Backoff, retry};
use baton_domain::rules::{self, approval};
use baton_domain::support::{Ports, call_json, provider_error};
use baton_domain::text::counted;
use futures_util::future::join_all;
use std::time::Duration;
use tokio::time::Instant;

pub const NAME: &str = "notify";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| notify(ports, request)).await
}

pub async fn notify(ports: &Ports, request: NotifyRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    let entry = ports.entry(context).await?;
    match request.event {
        NotifyEvent::ApprovalRequested => record_approval_request(ports, &request, &entry).await?,
        NotifyEvent::ApprovalExpired => record_approval_expiry(ports, &request).await?,
        _ => {}
    }
    let notifiers = ports.providers.notifiers(&entry).map_err(|e| provider_error(e, ErrorName::ProviderUnavailable))?;
    let release = ports.release(context).await?;
    let notification = Notification {
        headline: headline(&release, &request),
        action_needed: action_needed(&release, &request),
        links: links(&release),
        release,
    };
    // Whatever a provider or a command said reaches the team without the secrets it echoed.
    let notification = redact::scrubbed(&notification)
        .map_err(|e| TaskError::new(ErrorName::Internal, format!("{NAME}: cannot scrub the notification: {e}")))?;

    // Every notifier at once, each within its own budget: a slow one never holds the others up.
    let notification = &notification;
    let deliveries = notifiers.iter().map(|notifier| {
        let previous = notification.release.notifier_state.get(notifier.name());
        async move { (notifier.name(), previous, deliver(notifier.as_ref(), notification, previous).await) }
    });
    let mut states = serde_json::Map::new();
    for (name, previous, delivered) in join_all(deliveries).await {
        match delivered {
            Ok(Some(state)) if Some(&state) != previous => {
                states.insert(name.to_owned(), state);
            }
            Ok(_) => {}
            // Logged, not raised: a retried task would send the other notifiers' messages again,
            // and a notification that cannot be sent never stops a release.
            Err(err) => tracing::warn!(notifier = name, error = %chain_text(&err), "notification not delivered"),
        }
    }
    if !states.is_empty() {
        // Onto the record as it is now: other tasks may have written it while the notifiers ran.
        ports.update_release(context, |release| release.notifier_state.extend(states.clone())).await?;
    }
    Ok(Done {})
}

/// The wave of an approval event, and when it happened (the state's entry; the handler's clock without it).
fn approval_wave<'r>(ports: &Ports, request: &'r NotifyRequest) -> Result<(&'r str, chrono::DateTime<chrono::Utc>), TaskError> {
    let wave = request
        .wave
        .as_ref()
        .ok_or_else(|| TaskError::new(ErrorName::InputInvalid, format!("{NAME}: an approval event names its wave")))?;
    Ok((wave.name.as_str(), request.now.unwrap_or_else(|| ports.clock.now())))
}

/// Keeps the approval request, with the token that answers the waiting task, on the record, and
/// says on the timeline who may answer until when (once, however often the task runs).
async fn record_approval_request(ports: &Ports, request: &NotifyRequest, entry: &ServiceEntry) -> Result<(), TaskError> {
    let (wave, now) = approval_wave(ports, request)?;
    let token = request.token.clone().ok_or_else(|| {
        TaskError::new(ErrorName::InputInvalid, format!("{NAME}: approval-requested needs the task token (`$$.Task.Token`)"))
    })?;
    let spec =
        entry.delivery.deploy.waves.iter().find(|spec| spec.name == wave).and_then(|spec| ApprovalSpec::required(spec.approval.as_ref()));
    let spec = spec.ok_or_else(|| {
        TaskError::new(
            ErrorName::CatalogInvalid,
            format!("{NAME}: wave {wave} of {} requires no approval in the entry the release kept", entry.name),
        )
    })?;
    // The timeline first: whoever finds the token on the record (and may answer) finds the request on the timeline.
    let deadline = rules::deadline_after(now, spec.timeout.0);
    let message = format!("wave {wave} waits for approval by {} until {}", spec.approvers.join(", "), deadline.to_rfc3339());
    ports.record_event_once(&request.release, Stage::Deploy, EventKind::AwaitingApproval, message).await?;
    ports.update_release(&request.release, |release| approval::request(release, wave, spec, token.clone(), now)).await?;
    Ok(())
}

/// Records `approval-expired` on the release and its timeline.
async fn record_approval_expiry(ports: &Ports, request: &NotifyRequest) -> Result<(), TaskError> {
    let (wave, now) = approval_wave(ports, request)?;
    ports.update_release(&request.release, |release| approval::expire(release, wave, now)).await?;
    let message = format!("approval of wave {wave} expired: nobody answered before its deadline");
    ports.record_event_once(&request.release, Stage::Deploy, EventKind::ApprovalExpired, message).await
}

/// The longest one notifier may take for one stage, retries included: with an endpoint that
/// hangs or fails, a release loses at most this much per stage.
const STAGE_BUDGET: Duration = Duration::from_secs(3);
/// The longest one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// A notifier that left a call unanswered keeps this short budget, one call, for as long as it
/// stays silent ([`SILENT_FOR`]): an endpoint that never answers costs a release one full stage
/// budget, then this much per stage, not [`STAGE_BUDGET`] at every stage.
const SILENT_BUDGET: Duration = Duration::from_millis(500);
const SILENT_FOR: Duration = Duration::from_secs(10 * 60);

/// The notifiers (by name and service) whose last call went unanswered, and when.
static SILENT: std::sync::Mutex<Vec<(String, String, Instant)>> = std::sync::Mutex::new(Vec::new());

/// Whether `notifier` of `service` left a call unanswered within [`SILENT_FOR`].
fn was_silent(notifier: &str, service: &str) -> bool {
    let silent = SILENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    silent.iter().any(|(name, of, at)| name == notifier && of == service && at.elapsed() < SILENT_FOR)
}

fn mark_silent(notifier: &str, service: &str, silent_now: bool) {
    let mut silent = SILENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    silent.retain(|(name, of, at)| !(name == notifier && of == service) && at.elapsed() < SILENT_FOR);
    if silent_now {
        silent.push((notifier.to_owned(), service.to_owned(), Instant::now()));
    }
}

/// Sends one notification, retrying answers worth retrying until the stage's budget is spent;
/// a refusal is final at once, and so is a rate limit: nothing may be sent to that API before
/// the time it named, so the stage's budget would pass in waiting for nothing.
async fn deliver(
    notifier: &dyn Notifier,
    notification: &Notification,
    previous: Option<&serde_json::Value>,
) -> Result<Option<serde_json::Value>, ProviderError> {
    let service = notification.release.service.as_str();
    let budget = if was_silent(notifier.name(), service) { SILENT_BUDGET } else { STAGE_BUDGET };
    let deadline = Instant::now() + budget;
    let attempt = |_| async move {
        let call_limit = deadline.saturating_duration_since(Instant::now()).min(CALL_TIMEOUT);
        let answered = tokio::time::timeout(call_limit, notifier.notify(notification, previous)).await;
        mark_silent(notifier.name(), service, answered.is_err());
        answered.unwrap_or_else(|_| Err(ProviderError::unavailable(format!("no answer within {:.1} s", call_limit.as_secs_f64()))))
    };
    let retryable = |error: &ProviderError| !matches!(error, ProviderError::Rejected { .. }) && error.rate_limit().is_none();
    retry(Backoff::doubling(FIRST_PAUSE, Duration::MAX).until(deadline), attempt, retryable).await
}

fn headline(release: &Release, request: &NotifyRequest) -> String {
    // Every notifier shows the service and environment beside the headline.
    match request.event {
        NotifyEvent::Started => format!("release started from {} ({})", release.branch, release.trigger.kind.as_str()),
        NotifyEvent::Built => match &release.artifact {
            Some(artifact) => format!("built {}; deploying {}", artifact.reference, counted(release.waves.len(), "wave")),
            None => "build finished".to_owned(),
        },
        NotifyEvent::WaveHealthy => {
            let done = release.waves.iter().filter(|w| w.status == WaveStatus::Healthy).count();
            let wave = request.wave.as_ref().map(|w| w.name.as_str()).unwrap_or("wave");
            format!("{wave} healthy ({done}/{} waves)", release.waves.len())
        }
        NotifyEvent::RollingBack => "a wave failed; rolling back".to_owned(),
        NotifyEvent::ApprovalRequested => match release.pending_approval() {
            Some(pending) => format!(
                "wave {} waits for approval by {} until {}",
                pending.wave,
                pending.approvers.join(", "),
                pending.deadline.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "waiting for approval".to_owned(),
        },
        NotifyEvent::ApprovalExpired => {
            let wave = request.wave.as_ref().map(|w| w.name.as_str()).unwrap_or("wave");
            format!("approval of {wave} expired: nobody answered before its deadline")
        }
        NotifyEvent::Finished => match &request.outcome {
            Some(outcome) => {
                let why = outcome.error.as_ref().map(|e| format!(": {}", e.message())).unwrap_or_default();
                match outcome.status {
                    OutcomeStatus::Succeeded => "released".to_owned(),
                    OutcomeStatus::RolledBack => format!("rolled back{why}"),
                    OutcomeStatus::RollbackFailed => format!("rollback failed{why}"),
                    OutcomeStatus::Failed => format!("failed{why}"),
                    // The cause names who stopped it and why; what it deployed was rolled back.
                    OutcomeStatus::Cancelled => format!("cancelled{why}"),
                }
            }
            None => "finished".to_owned(),
        },
    }
}

/// What a person must do now: what the outcome says, or answer the approval the release waits for
/// (the Slack message's buttons, or `baton approve`).
fn action_needed(release: &Release, request: &NotifyRequest) -> Option<String> {
    match (request.event, release.pending_approval()) {
        (NotifyEvent::ApprovalRequested, Some(pending)) => Some(format!(
            "approve or reject wave {} before {}: the buttons above, or `baton approve {} [--reject] --reason TEXT`",
            pending.wave,
            pending.deadline.format("%Y-%m-%d %H:%M UTC"),
            release.id
        )),
        _ => request.outcome.as_ref().and_then(|o| o.action_needed.clone()),
    }
}

fn links(release: &Release) -> Vec<(String, String)> {
    let build = release.artifact.as_ref().and_then(|a| a.build_url.clone()).map(|url| ("Build".to_owned(), url));
    let deploys = release.waves.iter().filter_map(|w| w.deploy_url.clone().map(|url| (format!("Deploy {}", w.name), url)));
    build.into_iter().chain(deploys).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A notifier whose endpoint never answers, counting the calls it gets.
    #[derive(Default)]
    struct Hangs(AtomicUsize);

    #[async_trait]
    impl Notifier for Hangs {
        fn name(&self) -> &str {
            "hangs"
        }
        async fn notify(&self, _: &Notification, _: Option<&serde_json::Value>) -> Result<Option<serde_json::Value>, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::future::pending().await
        }
    }

    /// A notifier whose API is rate limiting for the next hour, counting the calls it gets.
    #[derive(Default)]
    struct Limited(AtomicUsize);

    #[async_trait]
    impl Notifier for Limited {
        fn name(&self) -> &str {
            "limited"
        }
        async fn notify(&self, _: &Notification, _: Option<&serde_json::Value>) -> Result<Option<serde_json::Value>, ProviderError> {
            let calls = self.0.fetch_add(1, Ordering::SeqCst);
            let until = chrono::Utc::now() + chrono::Duration::hours(1);
            let limit = baton_domain::ports::RateLimited { service: "Slack".into(), until, answered: calls == 0 };
            Err(ProviderError::unavailable("Slack is rate limiting").caused_by(limit))
        }
    }

    #[test]
    fn the_finished_headline_names_the_outcome_and_who_stopped_a_cancelled_release() {
        use baton_domain::flow::{CaughtError, Outcome, ReleaseContext};
        let release = baton_contract::release_at("rel-web-1", "web", "production", chrono::Utc::now());
        let finished = |status: OutcomeStatus, error: Option<(&str, &str)>| NotifyRequest {
            release: ReleaseContext {
                id: release.id.clone(),
                service: "web".into(),
                environment: "production".into(),
                branch: "main".into(),
                sha: None,
            },
            event: NotifyEvent::Finished,
            wave: None,
            outcome: Some(Outcome {
                status,
                error: error.map(|(error, cause)| CaughtError { error: error.into(), cause: cause.into() }),
                action_needed: None,
            }),
            token: None,
            now: None,
        };
        let cancelled = ("Baton.Interrupted", "release rel-web-1 was cancelled: ann cancelled the release: wrong commit");
        let cases = [
            (finished(OutcomeStatus::Succeeded, None), "released".to_owned()),
            (finished(OutcomeStatus::Cancelled, Some(cancelled)), format!("cancelled: {}", cancelled.1)),
            (
                finished(OutcomeStatus::RolledBack, Some(("Baton.HealthCheckFailed", "wave rest is unhealthy"))),
                "rolled back: wave rest is unhealthy".to_owned(),
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(headline(&release, &request), expected);
        }
    }

    #[tokio::test]
    async fn a_rate_limited_notifier_is_not_called_again_within_the_stage() {
        let notification = Notification {
            release: baton_contract::release_at("rel-limited-1", "limited-service", "production", chrono::Utc::now()),
            headline: "started".into(),
            action_needed: None,
            links: Vec::new(),
        };
        let limited = Limited::default();
        let started = Instant::now();
        let delivered = deliver(&limited, &notification, None).await;
        assert!(delivered.as_ref().is_err_and(|err| err.rate_limit().is_some()), "{delivered:?}");
        assert_eq!(limited.0.load(Ordering::SeqCst), 1, "no second call inside the limit");
        assert!(started.elapsed() < FIRST_PAUSE, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_notifier_that_never_answers_costs_one_stage_budget_then_one_short_call_per_stage() {
        let notification = Notification {
            release: baton_contract::release_at("rel-silent-1", "silent-service", "production", chrono::Utc::now()),
            headline: "started".into(),
            action_needed: None,
            links: Vec::new(),
        };
        let hangs = Hangs::default();
        let stage = || async {
            let started = Instant::now();
            let delivered = deliver(&hangs, &notification, None).await;
            assert!(matches!(delivered, Err(ProviderError::Unavailable { .. })), "{delivered:?}");
            started.elapsed()
        };
        let first = stage().await;
        assert_eq!(hangs.0.swap(0, Ordering::SeqCst), 2, "the first stage calls again once its first call timed out");
        assert!(first >= CALL_TIMEOUT, "{first:?}");
        for n in 0..2 {
            let next = stage().await;
            assert_eq!(hangs.0.swap(0, Ordering::SeqCst), 1, "stage {n} after the silence: one call");
            assert!(next < STAGE_BUDGET, "stage {n} took {next:?}");
        }
    }

    #[tokio::test]
    async fn every_notifier_of_the_entry_hears_of_the_release() {
        let fake = baton_contract::fakes::FakePorts::new(std::sync::Arc::new(baton_store_sqlite::SqliteStore::in_memory().unwrap()));
        let context = fake.running().await;
        let request =
            NotifyRequest { release: context.clone(), event: NotifyEvent::Started, wave: None, outcome: None, token: None, now: None };

        notify(&fake.ports, request.clone()).await.unwrap();

        let said = headline(&fake.ports.release(&context).await.unwrap(), &request);
        assert_eq!(fake.script.calls(), [format!("notify {said}")], "the entry's one notifier");
    }
}
