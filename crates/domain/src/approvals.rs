//! Answering a wave's approval, the same from Slack (the interactions function), from
//! `baton approve` and from `baton approve --remote`: the answer is recorded on the release
//! first (who, how, when, from where, why), then the waiting task hears it through
//! [`TaskTokens`]. Locally the process running the release delivers what another process
//! recorded (`crates/local-runner`), as its executor holds the token.

use crate::error::{ErrorName, TaskError};
use crate::ports::{ChatDirectory, ProviderError, ReleaseStore, TaskTokens};
use crate::release::{ApprovalDecision, EventKind, Release, ReleaseId, Stage, StageEvent, Verdict, Via};
use crate::rules::approval::{self, Person, Refusal};
use crate::support::{update_release, write_release};
use chrono::{DateTime, Utc};

/// Why an answer was not taken, or not heard.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The rules refuse it: nothing changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{}", .0.cause)]
    Store(#[from] TaskError),
    /// Recorded, but the waiting task could not be told (it ended, or Step Functions refused).
    #[error("the answer is recorded, but the release did not hear it: {0}")]
    NotDelivered(ProviderError),
    /// What the rules need to know of the person (an approving group's members, their email
    /// under four-eyes) is unknown: nothing was recorded.
    #[error("cannot tell {what}, so nothing was recorded: {source}")]
    Unknown { what: String, source: ProviderError },
}

/// An answer taken: the record after it, and the decision.
#[derive(Debug, Clone)]
pub struct Answered {
    pub release: Release,
    pub wave: String,
    pub decision: ApprovalDecision,
}

/// Records `person`'s answer to release `id`'s pending approval, then, with `tokens`, tells the
/// waiting task. A refused answer changes nothing.
#[allow(clippy::too_many_arguments)]
pub async fn answer(
    store: &dyn ReleaseStore,
    tokens: Option<&dyn TaskTokens>,
    id: &ReleaseId,
    person: &Person,
    verdict: Verdict,
    via: Via,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<Answered, AnswerError> {
    let reason = &reason;
    let decided = write_release(store, id, move |mut release| async move {
        let decision = match approval::decide(&release, person, verdict, via, reason.clone(), now) {
            Ok(decision) => decision,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let Some(pending) = release.approvals.last_mut() else { return Ok(Err(Refusal::NothingPending(release.id.to_string()))) };
        pending.decision = Some(decision.clone());
        let wave = pending.wave.clone();
        release.version = store.put_release(&release).await?;
        Ok(Ok(Answered { release, wave, decision }))
    })
    .await?;
    let decided = match decided {
        Ok(decided) => decided,
        Err(refusal) => {
            // An earlier answer recorded but never heard (its sender died or ran out of time)
            // still reaches the waiting task.
            if let Some(tokens) = tokens {
                deliver(store, tokens, id).await?;
            }
            return Err(refusal.into());
        }
    };
    let kind = if verdict == Verdict::Granted { EventKind::Approved } else { EventKind::Rejected };
    let event = StageEvent {
        release_id: id.clone(),
        at: now,
        stage: Stage::Deploy,
        wave: Some(decided.wave.clone()),
        target: None,
        kind,
        message: approval::describe(&decided.wave, &decided.decision),
    };
    store.append_event(&event).await.map_err(TaskError::from)?;
    if let Some(tokens) = tokens {
        deliver(store, tokens, id).await?;
    }
    Ok(decided)
}

/// `person` as `directory` knows them for release `id`'s pending approval: with the approving
/// user groups they are in, asked only when they are no approver otherwise (a named approver's
/// press needs no answer from the chat tool), and, under four-eyes, with their email, which the
/// author is compared with too. A directory that does not answer fails this (the press is
/// refused), never counting as an empty group or a stranger.
pub async fn identify(
    store: &dyn ReleaseStore,
    directory: &dyn ChatDirectory,
    id: &ReleaseId,
    person: &Person,
) -> Result<Person, AnswerError> {
    let release = store.get_release(id).await.map_err(TaskError::from)?;
    let Some(approval) = release.as_ref().and_then(Release::pending_approval) else { return Ok(person.clone()) };
    let mut found = person.clone();
    if !approval::is_approver(&approval.approvers, person) {
        for group in approval.approvers.iter().filter(|approver| approval::is_user_group(approver)) {
            let members = directory
                .members(group)
                .await
                .map_err(|source| AnswerError::Unknown { what: format!("whether you are in user group {group}"), source })?;
            if members.contains(&person.id) {
                found.groups.push(group.clone());
            }
        }
    }
    if approval.four_eyes && approval::is_approver(&approval.approvers, &found) {
        found.email = directory
            .email(&person.id)
            .await
            .map_err(|source| AnswerError::Unknown { what: "whether you started this release".into(), source })?;
    }
    Ok(found)
}

/// Tells the waiting task the recorded answer it has not heard yet, if any, and marks it heard
/// (dropping the token).
/// Answers whether there was one to tell.
pub async fn deliver(store: &dyn ReleaseStore, tokens: &dyn TaskTokens, id: &ReleaseId) -> Result<bool, AnswerError> {
    let release = store.get_release(id).await.map_err(TaskError::from)?.ok_or_else(|| Refusal::NothingPending(id.to_string()))?;
    let Some(approval) = release.approvals.last() else { return Ok(false) };
    let (Some(decision), Some(token)) = (&approval.decision, &approval.token) else { return Ok(false) };
    if decision.delivered {
        return Ok(false);
    }
    let told = match decision.verdict {
        Verdict::Granted => {
            let output = serde_json::json!({ "approved-by": decision.by, "via": decision.via });
            tokens.succeed(token, &output).await
        }
        Verdict::Rejected => tokens.fail(token, ErrorName::ApprovalRejected, &approval::describe(&approval.wave, decision)).await,
        Verdict::Expired => return Ok(false),
    };
    told.map_err(AnswerError::NotDelivered)?;
    let wave = approval.wave.clone();
    update_release(store, id, |release| {
        if let Some(approval) = release.approvals.last_mut().filter(|approval| approval.wave == wave)
            && let Some(decision) = &mut approval.decision
        {
            decision.delivered = true;
            // Answered tokens answer nothing more: the record keeps none past its use.
            approval.token = None;
        }
    })
    .await?;
    Ok(true)
}
