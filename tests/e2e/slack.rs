//! One Slack message per release, updated in place at every stage: a whole release through
//! the real definition, with the Slack Web API notifier talking to a local server that answers
//! as Slack documents `chat.postMessage`, `chat.getPermalink` and `chat.update`.

use baton_asl::{Clock, ExecutionStatus};
use baton_e2e::*;
use baton_local_runner::{LocalBaton, LocalConfig};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TS: &str = "1700000000.000100";
const PERMALINK: &str = "https://acme.slack.com/archives/C0RELEASES/p1700000000000100";

#[tokio::test]
async fn a_release_keeps_one_slack_message_up_to_date() {
    let slack = MockServer::start().await;
    let answer = json!({"ok": true, "channel": "C0RELEASES", "ts": TS, "message": {"text": "x"}});
    for endpoint in ["/chat.postMessage", "/chat.update"] {
        Mock::given(method("POST"))
            .and(path(endpoint))
            .and(header("authorization", "Bearer xoxb-e2e-token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer.clone()))
            .mount(&slack)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/chat.getPermalink"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "channel": "C0RELEASES", "permalink": PERMALINK})))
        .mount(&slack)
        .await;
    let fixture = Fixture::new();
    fixture.write_catalog(SERVICE, "    notify:\n      slack:\n        channel: \"#releases\"\n        token: env:BATON_E2E_SLACK_TOKEN\n");
    // SAFETY: set before any thread of this test reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("BATON_E2E_SLACK_TOKEN", "xoxb-e2e-token")
    };

    let config = LocalConfig { slack_api_base: Some(slack.uri()), ..fixture.config(Clock::Virtual) };
    let baton = LocalBaton::open(config).unwrap();
    let outcome = baton.run("exec-slack", cli_input("cli-1")).await;
    assert_status(&outcome, ExecutionStatus::Succeeded);

    let requests = slack.received_requests().await.unwrap();
    let bodies: Vec<(String, Value)> =
        requests.iter().map(|r| (r.url.path().to_owned(), serde_json::from_slice(&r.body).unwrap())).collect();
    let posts: Vec<_> = bodies.iter().filter(|(p, _)| p == "/chat.postMessage").collect();
    assert_eq!(posts.len(), 1, "one message per release: {bodies:#?}");
    assert_eq!(posts[0].1["channel"], "#releases");
    let updates: Vec<_> = bodies.iter().filter(|(p, _)| p == "/chat.update").collect();
    // started (post), built, three healthy waves, finished (updates).
    assert_eq!(updates.len(), 5, "every later stage updates that message");
    assert!(updates.iter().all(|(_, b)| b["ts"] == TS && b["channel"] == "C0RELEASES"), "updates name the message Slack answered with");
    assert!(updates.last().unwrap().1.to_string().contains("released"), "the last update says how it ended");

    let release = release_of(&baton, "exec-slack").await;
    assert_eq!(
        release.notifier_state.get("slack"),
        Some(&json!({"channel": "C0RELEASES", "ts": TS, "permalink": PERMALINK})),
        "the message and its link are kept in the release record"
    );
    assert_consistent(&baton, &release).await;
}
