//! Approval-gated releases on the stack, answered from Slack: the interactions function binary,
//! called through its function URL as Slack calls it, refuses a press with a bad signature and
//! answers each parked wave with a signed one, sending the task token's success (or failure) to
//! the stack's Step Functions endpoint; an approved release goes on and succeeds, a rejected one
//! rolls back, within the functions' IAM policies.

use super::cancel::catalog;
use super::stack::{every_used_grant_is_needed, signal, stack_with};
use baton_asl::ExecutionStatus;
use baton_aws::DynamoStore;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{Release, ReleaseStatus, Verdict, Via};
use baton_domain::signing::hmac_sha256_hex;
use baton_local_stack::function_url::UrlRequest;
use baton_local_stack::{LocalStack, iam};
use baton_providers::{APPROVE_ACTION, REJECT_ACTION};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SERVICE: &str = "gated-web";
const SECRET: &str = "local-stack-signing-secret";
const APPROVER: &str = "U0ANN";

/// The newest release of the service once it waits for `wave`'s approval with its token recorded.
async fn awaiting(store: &DynamoStore, wave: &str) -> Release {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let newest = store.list_releases(SERVICE, None, 1).await.unwrap().into_iter().next();
        let parked = |r: &Release| r.pending_approval().is_some_and(|a| a.wave == wave && a.token.is_some());
        if let Some(release) = newest.as_ref().filter(|r| parked(r)) {
            return release.clone();
        }
        assert!(Instant::now() < deadline, "the release never waited for {wave}'s approval: {newest:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A press of the release message's button `action` (Approve or Reject) by the approver, as Slack
/// posts it to the function URL, signed with `secret`.
fn press(release: &Release, action: &str, respond_to: &str, secret: &str) -> UrlRequest {
    let payload = json!({
        "type": "block_actions",
        // Each press is a request of its own (one that is the same request again is a replay).
        "trigger_id": uuid::Uuid::new_v4().to_string(),
        "user": {"id": APPROVER},
        "actions": [{"type": "button", "action_id": action, "value": release.id.as_str()}],
        "response_url": respond_to,
    });
    let body = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let signature = hmac_sha256_hex(secret.as_bytes(), &[b"v0:", timestamp.as_bytes(), b":", body.as_bytes()]);
    UrlRequest {
        method: "POST".into(),
        path: "/".into(),
        headers: vec![
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("X-Slack-Request-Timestamp".into(), timestamp),
            ("X-Slack-Signature".into(), format!("v0={signature}")),
        ],
        body: body.into_bytes(),
    }
}

/// What the function told the person who pressed (Slack's `response_url`).
async fn told(slack: &MockServer) -> Vec<String> {
    let requests = slack.received_requests().await.unwrap();
    let answers = requests.iter().filter(|r| r.url.path() == "/actions/respond");
    answers.map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["text"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Presses `action` on each wave in turn as the release waits for it, each press verified and
/// answered; what the function told the presser each time.
async fn press_each(stack: &LocalStack, slack: &MockServer, presses: &[(&str, &str)]) -> Vec<String> {
    let store = stack.release_store().unwrap();
    let respond_to = format!("{}/actions/respond", slack.uri());
    let mut heard = Vec::new();
    for (wave, action) in presses {
        let waiting = awaiting(&store, wave).await;
        let answered = stack.call_function_url("InteractionsFunction", &press(&waiting, action, &respond_to, SECRET)).await.unwrap();
        assert_eq!(answered.status, 200, "{}", answered.body);
        heard.push(told(slack).await.last().cloned().unwrap_or_default());
    }
    heard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_presses_through_the_function_url_answer_the_parked_release_within_the_iam_policies() {
    let slack = MockServer::start().await;
    Mock::given(method("POST")).and(path("/actions/respond")).respond_with(ResponseTemplate::new(200)).mount(&slack).await;
    let respond_to = format!("{}/actions/respond", slack.uri());
    let state = tempfile::tempdir().unwrap();
    // The deploys go on at once (cancel's catalog holds the second wave until this file exists).
    let go = state.path().join("deploy-at-once");
    std::fs::write(&go, "").unwrap();
    let catalog = catalog(state.path(), &go, SERVICE);
    // The organisation's default gates every production wave: both of the service's.
    let approval = json!({"required": true, "approvers": [APPROVER], "timeout": "1h"});
    let parameters = BTreeMap::from([("ApprovalDefault".to_owned(), approval.to_string())]);
    // The values themselves, not the template's secrets (the stack creates no Secrets Manager);
    // the bot token is unused (the approver is named by id) and Slack's Web API stays on this machine.
    let slack_env = vec![
        ("BATON_SLACK_SIGNING_SECRET".to_owned(), SECRET.to_owned()),
        ("BATON_SLACK_BOT_TOKEN".to_owned(), "xoxb-local-stack".to_owned()),
        ("BATON_SLACK_API_BASE".to_owned(), format!("{}/api", slack.uri())),
    ];
    let stack = stack_with(state.path(), catalog, parameters, slack_env).await;
    let store = stack.release_store().unwrap();
    let execution = stack.start(SERVICE, signal(SERVICE));

    let waiting = awaiting(&store, "first").await;
    let forged = press(&waiting, APPROVE_ACTION, &respond_to, "not the secret");
    let forged = stack.call_function_url("InteractionsFunction", &forged).await.unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);
    let unchanged = store.get_release(&waiting.id).await.unwrap().unwrap();
    assert_eq!((unchanged.version, &unchanged.approvals), (waiting.version, &waiting.approvals), "a refused press changes nothing");
    assert!(told(&slack).await.is_empty(), "an unverified press hears nothing back");

    let heard = press_each(&stack, &slack, &[("first", APPROVE_ACTION), ("second", APPROVE_ACTION)]).await;
    assert_eq!(
        heard,
        [format!("Done: wave first approved by {APPROVER} via Slack."), format!("Done: wave second approved by {APPROVER} via Slack.")]
    );

    let outcome = execution.outcome().await;
    assert_eq!(outcome.status, ExecutionStatus::Succeeded, "{:?}: {:?}", outcome.error, outcome.cause);
    let release = stack.release(SERVICE, &outcome).await.unwrap().expect("the release is in the release table");
    assert_eq!(release.status, ReleaseStatus::Succeeded, "{:?}", release.failure);
    let answered: Vec<_> = release
        .approvals
        .iter()
        .map(|a| a.decision.as_ref().map(|d| (a.wave.as_str(), d.verdict, d.by.as_deref(), d.via, d.delivered)))
        .collect();
    assert_eq!(
        answered,
        [
            Some(("first", Verdict::Granted, Some(APPROVER), Via::Slack, true)),
            Some(("second", Verdict::Granted, Some(APPROVER), Via::Slack, true))
        ]
    );

    // The next release is rejected at its second wave: the waves that ran roll back.
    let rejected = stack.start("gated-web-rejected", signal(SERVICE));
    press_each(&stack, &slack, &[("first", APPROVE_ACTION), ("second", REJECT_ACTION)]).await;
    let outcome = rejected.outcome().await;
    let release = stack.release(SERVICE, &outcome).await.unwrap().expect("the release is in the release table");
    assert_eq!(release.status, ReleaseStatus::RolledBack, "{:?}", release.failure);
    let failure = release.failure.as_ref().expect("the record says why");
    assert_eq!(failure.error, "Baton.ApprovalRejected", "{failure:?}");
    assert!(failure.cause.contains(&format!("rejected by {APPROVER} via Slack")), "{}", failure.cause);

    let reports = stack.iam_reports().unwrap();
    let text = iam::render(&reports);
    eprintln!("IAM check:\n{text}");
    let interactions = reports.get("InteractionsFunction").unwrap_or_else(|| panic!("the interactions function recorded nothing:\n{text}"));
    // Authorised on the state machine whose execution the token belongs to.
    let operations = stack.operations().unwrap();
    let machine = stack.template().reference("ReleaseStateMachine").unwrap();
    let sent: Vec<(&str, &str)> = operations["InteractionsFunction"]
        .iter()
        .filter(|op| op.action.starts_with("states:"))
        .map(|op| (op.action.as_str(), op.resource.as_str()))
        .collect();
    assert_eq!(sent, [("states:SendTaskFailure", machine.as_str()), ("states:SendTaskSuccess", machine.as_str())], "{text}");
    assert!(interactions.unused.is_empty(), "grants no run used and no comment explains:\n{text}");
    assert!(reports.values().all(|r| r.denied.is_empty()), "operations the template's policies do not allow:\n{text}");
    every_used_grant_is_needed(&stack);
    stack.shutdown();
}
