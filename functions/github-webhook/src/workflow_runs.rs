//! `workflow_run` deliveries: a GitHub Actions run's end resumes the release parked on it
//! (`ParkBuild`, keyed by the run's id: [`baton_providers::workflow_run_events`]).
//!
//! GitHub does not retry a failed delivery by itself, so a delivery that cannot be handed over
//! now (the delivery log, the waits or Step Functions not answering) is logged at warn with the
//! run's id and answered 503: the release's safety-net poll notices the run's end within its
//! interval, and a person may redeliver it from GitHub to move sooner. It is no lost merge, so
//! it is no ERROR line for the function's alarm.

use crate::{DeliveryClaim, DeliveryLog, MergePublisher, Webhook, duplicate, ignored};
use async_trait::async_trait;
use baton_domain::error::ErrorName;
use baton_domain::ports::{ProviderError, StoreError, TaskTokens, WaitRegistry};
use baton_domain::release::TaskToken;
use baton_domain::waits::{self, Happened, Parked, WaitKey};
use baton_lambda_glue::function_url::FunctionUrlResponse;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Where `workflow_run` events go: the waits releases parked on their builds (the release
/// table's `WAIT#` items on AWS) and the task tokens that resume them (Step Functions').
#[derive(Clone)]
pub struct BuildWaits {
    pub registry: Arc<dyn WaitRegistry>,
    pub tokens: Arc<dyn TaskTokens>,
}

impl<P: MergePublisher, D: DeliveryLog> Webhook<P, D> {
    /// A verified `workflow_run` delivery. Answers 202 a release resumed; 204 progress, or a run
    /// no release waits for; 200 a duplicate delivery; 400 an unreadable body; 503 not handed over
    /// (see the module's comment).
    pub(crate) async fn workflow_run(&self, body: &[u8], key: &str, delivery: &str, now: DateTime<Utc>) -> FunctionUrlResponse {
        let events = match baton_providers::workflow_run_events(body, delivery) {
            Ok(events) => events,
            Err(refused) => return FunctionUrlResponse::message(400, refused.to_string()),
        };
        let run = events.iter().map(|event| event.key.id.as_str()).next().unwrap_or("-");
        // Progress resumes nothing: answered without a claim, so the run's many
        // requested/in_progress deliveries cost no write.
        if events.iter().all(|event| event.happened == Happened::Progress) {
            tracing::info!(delivery, run, "workflow_run: still under way, nothing to resume");
            return ignored();
        }
        // Claimed once, as a merge is: a replay must not resume a release that parked again on
        // the same run after its safety-net poll.
        match self.deliveries.claim(key, delivery, now).await {
            Ok(DeliveryClaim::New) => {}
            Ok(DeliveryClaim::Seen { delivery: first, at }) => {
                tracing::warn!(delivery, first_delivery = first, first_at = %at, run, "duplicate workflow_run delivery: nothing resumed");
                return duplicate(&first, at);
            }
            Err(err) => {
                tracing::warn!(delivery, run, error = %err, "workflow_run not delivered (delivery log unavailable): the release's safety-net poll will see the run's end");
                return not_delivered();
            }
        }
        match waits::deliver(&events, self.waits.registry.as_ref(), self.waits.tokens.as_ref(), now).await {
            Ok(delivered) if delivered.resumed.is_empty() => {
                tracing::info!(delivery, run, "workflow_run: no release waits for this run");
                ignored()
            }
            Ok(delivered) => {
                let releases: Vec<&str> = delivered.resumed.iter().map(|(release, _)| release.as_str()).collect();
                tracing::info!(delivery, run, ?releases, "workflow_run resumed the release(s) parked on the run");
                FunctionUrlResponse::json(202, serde_json::json!({ "resumed": delivered.resumed.len(), "ignored": delivered.ignored }))
            }
            Err(err) => {
                tracing::warn!(delivery, run, error = %err, "workflow_run not delivered: the release's safety-net poll will see the run's end");
                // A redelivery from GitHub must not be taken for a replay.
                if let Err(err) = self.deliveries.forget(key, delivery).await {
                    tracing::warn!(delivery, run, error = %err, "delivery claim not given back: a redelivery within the retention will be refused");
                }
                not_delivered()
            }
        }
    }
}

fn not_delivered() -> FunctionUrlResponse {
    FunctionUrlResponse::message(
        503,
        "the workflow_run event could not be handed to the waiting release now; its safety-net poll will see the run's end, or redeliver it from GitHub",
    )
}

/// Waits and task tokens in this process's memory, for tests and the fuzz target: what was
/// parked, which tokens were told what, how often a key was read.
#[derive(Default)]
pub struct MemoryWaits {
    parked: Mutex<Vec<Parked>>,
    told: Mutex<Vec<String>>,
    takes: AtomicUsize,
    /// While set, telling a token fails as Step Functions not answering would.
    pub unreachable: AtomicBool,
}

impl MemoryWaits {
    /// Both ports on these waits.
    pub fn ports(self: &Arc<Self>) -> BuildWaits {
        BuildWaits { registry: self.clone(), tokens: self.clone() }
    }

    /// Each token told, as `<token> succeeded` or `<token> failed <error name>: <cause>`, in order.
    pub fn told(&self) -> Vec<String> {
        self.told.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many times a key's waits were taken (read).
    pub fn takes(&self) -> usize {
        self.takes.load(Ordering::SeqCst)
    }

    /// The keys waited on, in the order parked.
    pub fn waiting(&self) -> Vec<WaitKey> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|wait| wait.key.clone()).collect()
    }

    fn tell(&self, token: &TaskToken, what: String) -> Result<(), ProviderError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(ProviderError::unavailable("SendTask*: timeout"));
        }
        self.told.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{} {what}", token.expose()));
        Ok(())
    }
}

#[async_trait]
impl WaitRegistry for MemoryWaits {
    async fn park(&self, wait: &Parked) -> Result<(), StoreError> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        parked.retain(|earlier| !(earlier.key == wait.key && earlier.release == wait.release));
        parked.push(wait.clone());
        Ok(())
    }

    async fn take(&self, key: &WaitKey, now: DateTime<Utc>) -> Result<Vec<Parked>, StoreError> {
        self.takes.fetch_add(1, Ordering::SeqCst);
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let (taken, kept): (Vec<Parked>, Vec<Parked>) = parked.drain(..).partition(|wait| &wait.key == key);
        *parked = kept;
        Ok(taken.into_iter().filter(|wait| wait.until > now).collect())
    }
}

#[async_trait]
impl TaskTokens for MemoryWaits {
    async fn succeed(&self, token: &TaskToken, _: &serde_json::Value) -> Result<(), ProviderError> {
        self.tell(token, "succeeded".into())
    }

    async fn fail(&self, token: &TaskToken, error: ErrorName, cause: &str) -> Result<(), ProviderError> {
        self.tell(token, format!("failed {}: {cause}", error.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{Recorder, SECRET, Unavailable, error_filter, logged, published, request, sign};
    use crate::{DELIVERY_RETENTION, FunctionUrlRequest, MemoryDeliveryLog, WebhookSecret};
    use baton_domain::release::ReleaseId;
    use baton_domain::waits::WaitKind;
    use chrono::TimeDelta;
    use serde_json::{Value, json};

    fn t0() -> DateTime<Utc> {
        "2026-12-07T10:00:00Z".parse().unwrap()
    }

    /// GitHub's `workflow_run` payload, trimmed to the fields around those read.
    fn workflow_run(action: &str, run: u64, conclusion: Option<&str>) -> String {
        let status = match action {
            "completed" => "completed",
            "requested" => "queued",
            _ => "in_progress",
        };
        json!({
            "action": action,
            "workflow_run": {
                "id": run, "name": "release", "run_number": 7, "run_attempt": 1, "event": "workflow_dispatch",
                "status": status, "conclusion": conclusion, "workflow_id": 161335,
                "head_branch": "main", "head_sha": "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432",
                "html_url": format!("https://github.com/acme/payments-api/actions/runs/{run}"),
                "created_at": "2026-12-07T09:40:00Z", "updated_at": "2026-12-07T09:59:58Z",
            },
            "workflow": {"id": 161335, "path": ".github/workflows/release.yml"},
            "repository": {"name": "payments-api", "full_name": "acme/payments-api"},
            "sender": {"login": "octocat"}
        })
        .to_string()
    }

    fn delivery(body: &str) -> FunctionUrlRequest {
        request("workflow_run", body, Some(sign(body.as_bytes())))
    }

    fn key(run: u64) -> WaitKey {
        WaitKey::new(WaitKind::Build, "github-actions", run.to_string())
    }

    /// Release `r<run>` parks on each of `runs` with token `<token>-<run>`.
    async fn park(waits: &MemoryWaits, runs: &[u64], token: &str) {
        for run in runs {
            let wait = Parked {
                key: key(*run),
                release: ReleaseId(format!("r{run}")),
                token: TaskToken(format!("{token}-{run}")),
                until: t0() + TimeDelta::minutes(5),
            };
            waits.park(&wait).await.unwrap();
        }
    }

    /// A webhook whose releases are parked on `runs`.
    async fn parked_on(runs: &[u64]) -> (Webhook<Recorder, MemoryDeliveryLog>, Arc<MemoryWaits>) {
        let waits = Arc::new(MemoryWaits::default());
        park(&waits, runs, "t").await;
        let secret = WebhookSecret::new(SECRET).unwrap();
        (Webhook::new(secret, Recorder::default(), MemoryDeliveryLog::new(DELIVERY_RETENTION), waits.ports()), waits)
    }

    fn answer(response: &FunctionUrlResponse) -> Value {
        serde_json::from_str(&response.body).unwrap_or(Value::Null)
    }

    #[tokio::test]
    async fn a_finished_run_resumes_the_release_parked_on_it_and_no_other() {
        let (hook, waits) = parked_on(&[101, 202]).await;

        let passed = hook.handle_at(&delivery(&workflow_run("completed", 101, Some("success"))), t0()).await;
        assert_eq!(passed.status_code, 202, "{}", passed.body);
        assert_eq!(answer(&passed), json!({"resumed": 1, "ignored": 0}));
        assert_eq!(waits.told(), ["t-101 succeeded"]);
        assert_eq!(waits.waiting(), [key(202)], "the other release still waits");

        let failed = hook.handle_at(&delivery(&workflow_run("completed", 202, Some("failure"))), t0()).await;
        assert_eq!(failed.status_code, 202, "{}", failed.body);
        let told = waits.told();
        assert!(told[1].starts_with("t-202 failed Baton.BuildFailed: GitHub Actions run 202 ended with conclusion 'failure'"), "{told:?}");
        assert!(waits.waiting().is_empty());
        assert_eq!(published(&hook), 0, "a workflow run is no merge");
    }

    #[tokio::test]
    async fn a_run_under_way_or_one_nobody_waits_for_is_ignored() {
        let (hook, waits) = parked_on(&[101]).await;
        for (action, conclusion) in [("requested", None), ("in_progress", None), ("completed", None)] {
            let response = hook.handle_at(&delivery(&workflow_run(action, 101, conclusion)), t0()).await;
            assert_eq!((response.status_code, response.body.as_str()), (204, ""), "{action}");
        }
        assert_eq!(waits.takes(), 0, "progress reads no wait");

        let nobody = hook.handle_at(&delivery(&workflow_run("completed", 999, Some("success"))), t0()).await;
        assert_eq!(nobody.status_code, 204, "{}", nobody.body);
        assert_eq!(waits.takes(), 1);
        assert!(waits.told().is_empty());
        assert_eq!(waits.waiting(), [key(101)]);
    }

    #[tokio::test]
    async fn a_duplicate_delivery_changes_nothing_even_after_the_release_parked_again() {
        let (hook, waits) = parked_on(&[101]).await;
        let finished = delivery(&workflow_run("completed", 101, Some("success")));
        assert_eq!(hook.handle_at(&finished, t0()).await.status_code, 202);
        // Its poll found the run still going (GitHub's API a step behind its webhook): it parks again.
        park(&waits, &[101], "again").await;

        let replayed = hook.handle_at(&finished, t0() + TimeDelta::seconds(30)).await;
        assert_eq!(replayed.status_code, 200, "{}", replayed.body);
        assert_eq!(answer(&replayed)["message"], "duplicate delivery");
        assert_eq!(waits.told(), ["t-101 succeeded"], "the new park was not told");
        assert_eq!(waits.waiting(), [key(101)]);
    }

    #[tokio::test]
    async fn a_forged_delivery_is_refused_before_anything_is_read() {
        let (hook, waits) = parked_on(&[101]).await;
        let body = workflow_run("completed", 101, Some("success"));
        let other = workflow_run("completed", 102, Some("success"));
        let wrong_secret = format!("sha256={}", baton_domain::signing::hmac_sha256_hex(b"not the secret", &[body.as_bytes()]));
        for forged in [
            request("workflow_run", &body, None),
            request("workflow_run", &body, Some(wrong_secret)),
            request("workflow_run", &body, Some(sign(other.as_bytes()))),
        ] {
            assert_eq!(hook.handle_at(&forged, t0()).await.status_code, 401);
        }
        assert_eq!((waits.takes(), waits.told().len()), (0, 0));
        // Nor was the body claimed: the genuine delivery is a first one.
        assert_eq!(hook.handle_at(&delivery(&body), t0()).await.status_code, 202);
        assert_eq!(waits.told(), ["t-101 succeeded"]);
    }

    #[tokio::test]
    async fn an_unreadable_workflow_run_is_a_bad_request() {
        let (hook, waits) = parked_on(&[101]).await;
        let response = hook.handle_at(&delivery(r#"{"action": "completed", "workflow_run": {"id": "101"}}"#), t0()).await;
        assert_eq!(response.status_code, 400);
        assert!(response.body.contains("workflow_run"), "{}", response.body);
        assert_eq!(waits.takes(), 0);
    }

    #[tokio::test]
    async fn a_release_that_cannot_be_told_waits_again_and_githubs_redelivery_resumes_it() {
        let (hook, waits) = parked_on(&[101]).await;
        let finished = delivery(&workflow_run("completed", 101, Some("success")));
        waits.unreachable.store(true, Ordering::SeqCst);
        let mut response = None;
        let lines = logged(async { response = Some(hook.handle_at(&finished, t0()).await) }).await;
        let response = response.unwrap();
        assert_eq!(response.status_code, 503, "{}", response.body);
        assert!(response.body.contains("safety-net poll"), "{}", response.body);
        assert_eq!(waits.waiting(), [key(101)], "parked again for the safety net or a redelivery");
        let warned = lines
            .iter()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .any(|line| line["level"] == "WARN" && line["run"] == "101" && line["message"].as_str().unwrap().contains("safety-net"));
        assert!(warned, "a warning naming the run: {lines:#?}");
        let filter = error_filter();
        assert_eq!(lines.iter().filter(|line| filter.matches(line)).count(), 0, "no lost merge, no alarm: {lines:#?}");

        waits.unreachable.store(false, Ordering::SeqCst);
        let redelivered = hook.handle_at(&finished, t0() + TimeDelta::seconds(30)).await;
        assert_eq!(redelivered.status_code, 202, "the claim was given back: {}", redelivered.body);
        assert_eq!(waits.told(), ["t-101 succeeded"]);
    }

    #[tokio::test]
    async fn without_the_delivery_log_nothing_is_resumed() {
        let waits = Arc::new(MemoryWaits::default());
        park(&waits, &[101], "t").await;
        let hook = Webhook::new(WebhookSecret::new(SECRET).unwrap(), Recorder::default(), Unavailable, waits.ports());
        let mut response = None;
        let finished = delivery(&workflow_run("completed", 101, Some("success")));
        let lines = logged(async { response = Some(hook.handle_at(&finished, t0()).await) }).await;
        assert_eq!(response.unwrap().status_code, 503);
        assert_eq!((waits.takes(), waits.told().len()), (0, 0));
        let filter = error_filter();
        assert_eq!(lines.iter().filter(|line| filter.matches(line)).count(), 0, "{lines:#?}");
    }
}
