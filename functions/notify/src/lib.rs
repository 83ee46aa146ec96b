//! notify: tells the team where the release stands, through every notifier the service
//! configures (console, Slack). Each notifier keeps its own state (a Slack message's
//! channel and ts) in the release record, so the next stage updates the same message.

use baton_domain::error::{ErrorName, TaskError};
use baton_domain::flow::{Done, NotifyEvent, NotifyRequest, OutcomeStatus};
use baton_domain::ports::Notification;
use baton_domain::release::{Release, WaveStatus};
use baton_domain::support::{Ports, call_json, provider_error};

pub const NAME: &str = "notify";

pub async fn handle(ports: &Ports, payload: serde_json::Value) -> Result<serde_json::Value, TaskError> {
    call_json(NAME, payload, |request| notify(ports, request)).await
}

pub async fn notify(ports: &Ports, request: NotifyRequest) -> Result<Done, TaskError> {
    let context = &request.release;
    let notifiers = ports
        .providers
        .notifiers(context.entry.delivery.notify.slack.as_ref(), &context.entry)
        .map_err(|e| provider_error(e, ErrorName::ProviderUnavailable))?;
    let release = ports.release(context).await?;
    let notification = Notification {
        headline: headline(&release, &request),
        action_needed: request.outcome.as_ref().and_then(|o| o.action_needed.clone()),
        links: links(&release),
        release,
    };

    let mut states = serde_json::Map::new();
    let mut failures = Vec::new();
    for notifier in &notifiers {
        let previous = notification.release.notifier_state.get(notifier.name());
        match notifier.notify(&notification, previous).await {
            Ok(Some(state)) if Some(&state) != previous => {
                states.insert(notifier.name().to_owned(), state);
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(notifier = notifier.name(), error = %err, "notification not delivered");
                failures.push(provider_error(err, ErrorName::ProviderUnavailable));
            }
        }
    }
    if !states.is_empty() {
        // Onto the record as it is now: other tasks may have written it while the notifiers ran.
        ports.update_release(context, |release| release.notifier_state.extend(states.clone())).await?;
    }
    // One notifier failing must not silence the others; report it after they all had their turn.
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(Done {}),
    }
}

fn headline(release: &Release, request: &NotifyRequest) -> String {
    // Every notifier shows the service and environment beside the headline.
    match request.event {
        NotifyEvent::Started => format!("release started from {} ({})", release.branch, release.trigger.kind.as_str()),
        NotifyEvent::Built => match &release.artifact {
            Some(artifact) => format!("built {}; deploying {} waves", artifact.reference, release.waves.len()),
            None => "build finished".to_owned(),
        },
        NotifyEvent::WaveHealthy => {
            let done = release.waves.iter().filter(|w| w.status == WaveStatus::Healthy).count();
            let wave = request.wave.as_ref().map(|w| w.name.as_str()).unwrap_or("wave");
            format!("{wave} healthy ({done}/{} waves)", release.waves.len())
        }
        NotifyEvent::RollingBack => "a wave failed; rolling back".to_owned(),
        NotifyEvent::Finished => match &request.outcome {
            Some(outcome) => {
                let why = outcome.error.as_ref().map(|e| format!(": {}", e.message())).unwrap_or_default();
                match outcome.status {
                    OutcomeStatus::Succeeded => "released".to_owned(),
                    OutcomeStatus::RolledBack => format!("rolled back{why}"),
                    OutcomeStatus::RollbackFailed => format!("rollback failed{why}"),
                    OutcomeStatus::Failed => format!("failed{why}"),
                }
            }
            None => "finished".to_owned(),
        },
    }
}

fn links(release: &Release) -> Vec<(String, String)> {
    let build = release.artifact.as_ref().and_then(|a| a.build_url.clone()).map(|url| ("Build".to_owned(), url));
    let deploys = release.waves.iter().filter_map(|w| w.deploy_url.clone().map(|url| (format!("Deploy {}", w.name), url)));
    build.into_iter().chain(deploys).collect()
}
