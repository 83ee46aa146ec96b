//! Approval gates through the real definition on the embedded executor: a wave that requires
//! approval parks on a task token until a person answers (or its deadline passes), and the
//! answer is recorded on the release with who, when, from where and why.

use baton_asl::{EventType, ExecutionOutcome, ExecutionStatus, HistoryEvent};
use baton_domain::approvals::{self, AnswerError};
use baton_domain::release::{EventKind, Release, ReleaseStatus, Verdict, Via};
use baton_domain::rules::approval::{Person, Refusal};
use baton_e2e::*;
use baton_local_runner::LocalBaton;
use std::time::Duration;

const GATED: &str = "one-region";

/// Waits (wall time) until the release of `execution` waits for an approval, and answers it.
pub async fn pending(baton: &LocalBaton, execution: &str) -> Release {
    for _ in 0..500 {
        if let Some(release) = releases(baton).await.into_iter().find(|r| r.execution.as_deref() == Some(execution))
            && release.pending_approval().is_some_and(|approval| approval.token.is_some())
        {
            return release;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("release of {execution} never asked for approval: {:#?}", releases(baton).await);
}

async fn answer(baton: &LocalBaton, release: &Release, who: &str, verdict: Verdict, reason: Option<&str>) -> Result<(), AnswerError> {
    let store = baton.ports().store.as_ref();
    let reason = reason.map(str::to_owned);
    approvals::answer(store, None, &release.id, &Person::new(who), verdict, Via::Cli, reason, chrono::Utc::now()).await.map(drop)
}

/// The events of the state `name`'s (first) run, from its entry to its exit.
fn state_events<'h>(outcome: &'h ExecutionOutcome, name: &str) -> &'h [HistoryEvent] {
    let history = &outcome.history;
    let named = |event: &HistoryEvent| event.details.as_ref().and_then(|d| d.name.as_deref()).is_some_and(|state| state == name);
    let entered = history.iter().position(|e| e.event_type == EventType::TaskStateEntered && named(e)).expect("the state ran");
    let exited = history.iter().skip(entered).position(|e| e.event_type == EventType::TaskStateExited && named(e)).map(|n| n + entered);
    &history[entered..=exited.unwrap_or(history.len() - 1)]
}

fn approval_fixture(block: &str) -> Fixture {
    let mut fixture = Fixture::new();
    fixture.require_approval(GATED, block);
    fixture
}

#[tokio::test]
async fn an_approved_wave_deploys_and_the_wait_costs_no_transitions() {
    let fixture = approval_fixture("{required: true, approvers: [ann, bob], timeout: 1h}");
    let baton = fixture.baton();
    let run = baton.start("exec-approved", cli_input("cli-1"));
    let waiting = pending(&baton, "exec-approved").await;
    assert_eq!(waiting.waves[0].status, baton_domain::release::WaveStatus::Healthy, "the canary went before the gate");
    assert_eq!(fixture.deployed(SERVICE, "use1-a"), None, "nothing of the gated wave deploys before its approval");
    let events = baton.ports().store.events(&waiting.id).await.unwrap();
    let asked = events.iter().find(|e| e.kind == EventKind::AwaitingApproval).expect("the timeline says who may approve");
    assert!(asked.message.contains("ann, bob"), "{}", asked.message);
    // Waiting a while (wall time) makes no event: the execution is parked on its token.
    tokio::time::sleep(Duration::from_millis(700)).await;

    answer(&baton, &waiting, "bob", Verdict::Granted, Some("dashboards are green")).await.unwrap();
    let outcome = run.outcome().await;
    assert_status(&outcome, ExecutionStatus::Succeeded);
    let release = release_of(&baton, "exec-approved").await;
    assert_eq!(release.status, ReleaseStatus::Succeeded);
    let decision = release.approvals[0].decision.clone().expect("the answer is recorded");
    assert_eq!((decision.verdict, decision.by.as_deref(), decision.via), (Verdict::Granted, Some("bob"), Via::Cli));
    assert_eq!(decision.reason.as_deref(), Some("dashboards are green"));
    assert!(decision.delivered);
    assert_eq!(release.approvals[0].token, None, "a delivered answer leaves no token on the record");
    let events = baton.ports().store.events(&release.id).await.unwrap();
    let approved = events.iter().find(|e| e.kind == EventKind::Approved).expect("the timeline records the approval");
    assert_eq!(approved.message, "wave one-region approved by bob via the CLI: dashboards are green");

    let gate: Vec<EventType> = state_events(&outcome, "AwaitApproval").iter().map(|e| e.event_type).collect();
    assert_eq!(
        gate,
        [
            EventType::TaskStateEntered,
            EventType::TaskScheduled,
            EventType::TaskStarted,
            EventType::TaskSubmitted,
            EventType::TaskSucceeded,
            EventType::TaskStateExited
        ],
        "a waiting approval costs no transitions, however long it waits"
    );
    let shown = serde_json::to_string(&release.for_display()).unwrap();
    assert!(!shown.contains("\"token\""), "the token is never shown: {shown}");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_rejected_wave_rolls_back_the_waves_that_ran() {
    let fixture = approval_fixture("{required: true, approvers: [ann], timeout: 1h}");
    let baton = fixture.baton();
    let run = baton.start("exec-rejected", cli_input("cli-1"));
    let waiting = pending(&baton, "exec-rejected").await;
    answer(&baton, &waiting, "ann", Verdict::Rejected, Some("freeze tonight")).await.unwrap();
    let outcome = run.outcome().await;
    assert_outcome(&outcome, "rolled-back", "Baton.ApprovalRejected");
    let release = release_of(&baton, "exec-rejected").await;
    assert_eq!(release.status, ReleaseStatus::RolledBack);
    assert!(release.failure.as_ref().unwrap().cause.contains("rejected by ann via the CLI: freeze tonight"), "{:?}", release.failure);
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "the canary is put back");
    assert_eq!(fixture.deployed(SERVICE, "use1-a"), None);
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_rolls_back() {
    let fixture = approval_fixture("{required: true, approvers: [ann], timeout: 1s}");
    let baton = fixture.baton();
    let outcome = baton.run("exec-expired", cli_input("cli-1")).await;
    assert_outcome(&outcome, "rolled-back", "Baton.ApprovalExpired");
    let release = release_of(&baton, "exec-expired").await;
    let decision = release.approvals[0].decision.clone().unwrap();
    assert_eq!((decision.verdict, decision.via, decision.by), (Verdict::Expired, Via::Deadline, None));
    assert_eq!(release.approvals[0].token, None);
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::ApprovalExpired), "approval-expired is on the timeline: {events:#?}");
    assert_eq!(fixture.deployed(SERVICE, "box-1"), None, "on-timeout: rollback undoes the canary");
    assert_consistent(&baton, &release).await;
    // Too late: the approval answers nothing now.
    let late = answer(&baton, &release, "ann", Verdict::Granted, None).await;
    assert!(matches!(late, Err(AnswerError::Refused(Refusal::NothingPending(_)))), "{late:?}");
}

#[tokio::test]
async fn an_unanswered_approval_with_on_timeout_stop_ends_before_the_wave() {
    let fixture = approval_fixture("{required: true, approvers: [ann], timeout: 1s, on-timeout: stop}");
    let baton = fixture.baton();
    let outcome = baton.run("exec-stopped", cli_input("cli-1")).await;
    assert_outcome(&outcome, "failed", "Baton.ApprovalStopped");
    let release = release_of(&baton, "exec-stopped").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let artifact = release.artifact.clone().unwrap();
    assert_eq!(fixture.deployed(SERVICE, "box-1").as_deref(), Some(artifact.reference.as_str()), "the canary stays");
    assert_eq!(fixture.deployed(SERVICE, "use1-a"), None, "the gated wave never ran");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn the_author_under_four_eyes_and_strangers_are_refused_and_change_nothing() {
    // `cli_input` starts the release as `test`.
    let fixture = approval_fixture("{required: true, approvers: [test, ann], timeout: 1h, four-eyes: true}");
    let baton = fixture.baton();
    let run = baton.start("exec-four-eyes", cli_input("cli-1"));
    let waiting = pending(&baton, "exec-four-eyes").await;

    let by_author = answer(&baton, &waiting, "test", Verdict::Granted, None).await;
    assert!(matches!(by_author, Err(AnswerError::Refused(Refusal::Author { .. }))), "{by_author:?}");
    let by_stranger = answer(&baton, &waiting, "mallory", Verdict::Granted, None).await;
    assert!(matches!(by_stranger, Err(AnswerError::Refused(Refusal::NotAnApprover { .. }))), "{by_stranger:?}");
    let unchanged = release_of(&baton, "exec-four-eyes").await;
    assert_eq!(unchanged.approvals, waiting.approvals, "a refused answer changes nothing");
    assert_eq!(unchanged.version, waiting.version);

    answer(&baton, &waiting, "ann", Verdict::Granted, None).await.unwrap();
    assert_status(&run.outcome().await, ExecutionStatus::Succeeded);
}

mod slack {
    use super::*;
    use baton_domain::ports::ChatDirectory;
    use baton_domain::signing::hmac_sha256_hex;
    use baton_interactions::{FunctionUrlRequest, HttpRespond, Interactions, NoChatDirectory};
    use baton_local_runner::ExecutorTokens;
    use baton_local_runner::LocalBaton;
    use baton_providers::{APPROVE_ACTION, SlackDirectory, SlackInteractions};
    use serde_json::{Value, json};
    use std::collections::HashMap;
    use std::sync::Arc;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SECRET: &str = "e2e-slack-signing-secret";

    /// A press on the release message's button by `user`, as Slack sends it, signed at `timestamp` with `secret`.
    fn press(release: &Release, user: &str, respond_to: &str, timestamp: i64, secret: &str) -> FunctionUrlRequest {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user},
            "actions": [{"type": "button", "action_id": APPROVE_ACTION, "value": release.id.as_str()}],
            "response_url": respond_to,
        });
        let body = form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let signature = hmac_sha256_hex(secret.as_bytes(), &[b"v0:", timestamp.to_string().as_bytes(), b":", body.as_bytes()]);
        let headers = HashMap::from([
            ("x-slack-request-timestamp".to_owned(), timestamp.to_string()),
            ("x-slack-signature".to_owned(), format!("v0={signature}")),
            ("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned()),
        ]);
        FunctionUrlRequest { headers, body: Some(body), is_base64_encoded: false }
    }

    /// The interactions function over the local Baton's store and executor, asking `directory`
    /// who pressed.
    fn interactions(baton: &LocalBaton, directory: Arc<dyn ChatDirectory>) -> Interactions {
        Interactions {
            inbound: Arc::new(SlackInteractions::new(SECRET).unwrap()),
            store: baton.ports().store.clone(),
            tokens: Arc::new(ExecutorTokens(baton.executor().clone())),
            respond: Arc::new(HttpRespond::over_shared_https().unwrap()),
            directory,
        }
    }

    /// Slack's Web API on `slack`, with the bot token the mocks expect.
    fn slack_directory(slack: &MockServer) -> Arc<dyn ChatDirectory> {
        Arc::new(SlackDirectory::new("xoxb-e2e".into(), baton_providers::http_client().unwrap(), &format!("{}/api", slack.uri())))
    }

    async fn answers(server: &MockServer) -> Vec<Value> {
        let requests = server.received_requests().await.unwrap();
        requests.iter().filter(|r| r.url.path() == "/actions/respond").map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_signed_press_approves_and_bad_stale_replayed_or_outsider_presses_change_nothing() {
        let slack = MockServer::start().await;
        Mock::given(method("POST")).and(path("/actions/respond")).respond_with(ResponseTemplate::new(200)).mount(&slack).await;
        let respond_to = format!("{}/actions/respond", slack.uri());
        let fixture = approval_fixture("{required: true, approvers: [U0ANN], timeout: 1h}");
        let baton = fixture.baton();
        let run = baton.start("exec-slack-approval", cli_input("cli-1"));
        let waiting = pending(&baton, "exec-slack-approval").await;
        let interactions = interactions(&baton, Arc::new(NoChatDirectory));
        let now = chrono::Utc::now();
        let ts = now.timestamp();

        let forged = interactions.handle_at(&press(&waiting, "U0ANN", &respond_to, ts, "not the secret"), now).await;
        let stale = interactions.handle_at(&press(&waiting, "U0ANN", &respond_to, ts - 6 * 60, SECRET), now).await;
        assert_eq!((forged.status_code, stale.status_code), (401, 401), "{} {}", forged.body, stale.body);
        let outsider = interactions.handle_at(&press(&waiting, "U0MALLORY", &respond_to, ts, SECRET), now).await;
        assert_eq!(outsider.status_code, 200);
        let told = answers(&slack).await;
        assert_eq!(told.len(), 1, "only a verified request hears back: {told:?}");
        assert_eq!(told[0]["response_type"], "ephemeral", "only the person who pressed reads it");
        assert_eq!(told[0]["text"], "Not recorded: U0MALLORY is not among the approvers of wave one-region (U0ANN).");
        let unchanged = release_of(&baton, "exec-slack-approval").await;
        assert_eq!((unchanged.version, &unchanged.approvals), (waiting.version, &waiting.approvals), "refused presses change nothing");

        let good = press(&waiting, "U0ANN", &respond_to, ts + 1, SECRET);
        assert_eq!(interactions.handle_at(&good, now).await.status_code, 200);
        assert_eq!(answers(&slack).await[1]["text"], "Done: wave one-region approved by U0ANN via Slack.");
        let replayed = interactions.handle_at(&good, now).await;
        assert_eq!(replayed.status_code, 401, "{}", replayed.body);
        assert_eq!(answers(&slack).await.len(), 2, "a replay hears nothing back");

        assert_status(&run.outcome().await, ExecutionStatus::Succeeded);
        let release = release_of(&baton, "exec-slack-approval").await;
        let decision = release.approvals[0].decision.clone().unwrap();
        assert_eq!((decision.verdict, decision.by.as_deref(), decision.via), (Verdict::Granted, Some("U0ANN"), Via::Slack));
        assert_consistent(&baton, &release).await;
    }

    /// Slack's `usergroups.users.list` for S0RELEASERS: U0BOB is in it, until Slack fails.
    async fn user_groups_api(slack: &MockServer, answer: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path("/api/usergroups.users.list"))
            .and(query_param("usergroup", "S0RELEASERS"))
            .and(header("authorization", "Bearer xoxb-e2e"))
            .respond_with(answer)
            .mount(slack)
            .await;
    }

    #[tokio::test]
    async fn a_member_of_an_approving_user_group_approves_and_a_slack_outage_refuses_the_press() {
        let slack = MockServer::start().await;
        Mock::given(method("POST")).and(path("/actions/respond")).respond_with(ResponseTemplate::new(200)).mount(&slack).await;
        let respond_to = format!("{}/actions/respond", slack.uri());
        let fixture = approval_fixture("{required: true, approvers: [S0RELEASERS], timeout: 1h}");
        let baton = fixture.baton();
        let run = baton.start("exec-group-approval", cli_input("cli-1"));
        let waiting = pending(&baton, "exec-group-approval").await;
        let interactions = interactions(&baton, slack_directory(&slack));
        let now = chrono::Utc::now();
        let ts = now.timestamp();

        // Slack is down: the press is refused, saying so; nothing changes.
        user_groups_api(&slack, ResponseTemplate::new(503)).await;
        assert_eq!(interactions.handle_at(&press(&waiting, "U0BOB", &respond_to, ts, SECRET), now).await.status_code, 200);
        let text = answers(&slack).await[0]["text"].as_str().unwrap().to_owned();
        assert!(text.starts_with("Baton could not record your answer (cannot tell whether you are in user group S0RELEASERS"), "{text}");
        assert!(text.contains("Slack usergroups.users.list for S0RELEASERS answered 503"), "{text}");
        let unchanged = release_of(&baton, "exec-group-approval").await;
        assert_eq!((unchanged.version, &unchanged.approvals), (waiting.version, &waiting.approvals), "an outage approves nothing");

        slack.reset().await;
        Mock::given(method("POST")).and(path("/actions/respond")).respond_with(ResponseTemplate::new(200)).mount(&slack).await;
        user_groups_api(&slack, ResponseTemplate::new(200).set_body_json(json!({"ok": true, "users": ["U0ANN", "U0BOB"]}))).await;
        let outsider = interactions.handle_at(&press(&waiting, "U0MALLORY", &respond_to, ts + 1, SECRET), now).await;
        assert_eq!(outsider.status_code, 200);
        assert_eq!(
            answers(&slack).await[0]["text"],
            "Not recorded: U0MALLORY is not among the approvers of wave one-region (S0RELEASERS)."
        );
        let member = interactions.handle_at(&press(&waiting, "U0BOB", &respond_to, ts + 2, SECRET), now).await;
        assert_eq!(member.status_code, 200);
        assert_eq!(answers(&slack).await[1]["text"], "Done: wave one-region approved by U0BOB via Slack.");
        let asked = slack.received_requests().await.unwrap().iter().filter(|r| r.url.path().ends_with("usergroups.users.list")).count();
        assert_eq!(asked, 1, "the group's members are kept for a while: asked once for two presses");

        assert_status(&run.outcome().await, ExecutionStatus::Succeeded);
        let release = release_of(&baton, "exec-group-approval").await;
        assert_eq!(release.approvals[0].decision.as_ref().and_then(|d| d.by.as_deref()), Some("U0BOB"));
    }

    /// Slack's `users.info` for `user`, whose profile shows `email`.
    async fn user_info(slack: &MockServer, user: &str, email: &str) {
        let answer = json!({"ok": true, "user": {"id": user, "name": user.to_lowercase(), "profile": {"email": email}}});
        Mock::given(method("GET"))
            .and(path("/api/users.info"))
            .and(query_param("user", user))
            .and(header("authorization", "Bearer xoxb-e2e"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .mount(slack)
            .await;
    }

    #[tokio::test]
    async fn four_eyes_refuses_the_author_under_their_slack_identity_and_takes_another_person() {
        let slack = MockServer::start().await;
        Mock::given(method("POST")).and(path("/actions/respond")).respond_with(ResponseTemplate::new(200)).mount(&slack).await;
        // The CLI release's actor is the local user `test`; in Slack they are U0TEST.
        user_info(&slack, "U0TEST", "test@example.com").await;
        user_info(&slack, "U0BOB", "bob@example.com").await;
        let respond_to = format!("{}/actions/respond", slack.uri());
        let fixture = approval_fixture("{required: true, approvers: [U0TEST, U0BOB], timeout: 1h, four-eyes: true}");
        let baton = fixture.baton();
        let run = baton.start("exec-four-eyes", cli_input("cli-1"));
        let waiting = pending(&baton, "exec-four-eyes").await;
        assert_eq!(waiting.trigger.actor.as_deref(), Some("test"));
        let interactions = interactions(&baton, slack_directory(&slack));
        let now = chrono::Utc::now();
        let ts = now.timestamp();

        let author = interactions.handle_at(&press(&waiting, "U0TEST", &respond_to, ts, SECRET), now).await;
        assert_eq!(author.status_code, 200);
        assert_eq!(
            answers(&slack).await[0]["text"],
            "Not recorded: U0TEST started this release and wave one-region needs a second person (four-eyes)."
        );
        let unchanged = release_of(&baton, "exec-four-eyes").await;
        assert_eq!((unchanged.version, &unchanged.approvals), (waiting.version, &waiting.approvals), "the author's press changes nothing");

        let other = interactions.handle_at(&press(&waiting, "U0BOB", &respond_to, ts + 1, SECRET), now).await;
        assert_eq!(other.status_code, 200);
        assert_eq!(answers(&slack).await[1]["text"], "Done: wave one-region approved by U0BOB via Slack.");
        assert_status(&run.outcome().await, ExecutionStatus::Succeeded);
    }
}
