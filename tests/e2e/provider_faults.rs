//! Whole releases against providers that misbehave the way their APIs document: an Argo CD
//! that refuses a sync, a release whose commit nobody knows. The real definition on the
//! embedded executor, the real handlers and providers, Argo CD played by a local server.

use baton_domain::release::{EventKind, ReleaseStatus, WaveStatus};
use baton_e2e::*;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHA: &str = "4f2a9c1e0b7d5a3c4f2a9c1e0b7d5a3c4f2a9c1e";

/// An application as Argo CD's GET answers it, synced at `revision` by an earlier operation.
fn application(revision: &str) -> Value {
    json!({
        "metadata": { "name": "box-1", "namespace": "argocd" },
        "spec": { "project": "checkout", "source": { "repoURL": "https://github.com/acme/deploy.git", "targetRevision": "main" } },
        "status": {
            "sync": { "status": "Synced", "revision": revision },
            "health": { "status": "Healthy" },
            "operationState": {
                "operation": { "sync": { "revision": revision } },
                "phase": "Succeeded",
                "startedAt": "2026-01-01T11:00:00Z",
                "finishedAt": "2026-01-01T11:01:00Z",
            },
        },
    })
}

/// The fixture's service built by its command build, deployed by Argo CD at `server`.
fn argo_fixture(server: &MockServer, token_variable: &str) -> Fixture {
    let fixture = Fixture::new();
    let build = format!(
        "      provider: command\n      command: [\"sh\", \"-c\", \"echo registry/checkout:build-1\"]\n      env: {{CONTROL: \"{}\"}}\n",
        fixture.control().display()
    );
    let deploy = format!("      provider: argo-cd\n      server: {}\n      token: env:{token_variable}\n", server.uri());
    fixture.write_catalog_with_blocks(SERVICE, "", &build, &deploy);
    // SAFETY: each test sets its own variable before any thread of it reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(token_variable, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiYXRvbiJ9.e2e")
    };
    fixture
}

#[tokio::test]
async fn a_command_build_without_a_sha_outside_git_is_refused_before_any_wave_against_argo_cd() {
    let server = MockServer::start().await;
    let fixture = argo_fixture(&server, "BATON_E2E_ARGO_TOKEN_NO_SHA");
    let baton = fixture.baton();
    let input = json!({"service": SERVICE, "trigger": {"kind": "cli", "id": "cli-no-sha", "actor": "test"}});
    let outcome = baton.run("exec-no-sha", input).await;
    assert_outcome(&outcome, "failed", "Baton.BuildFailed");

    let release = release_of(&baton, "exec-no-sha").await;
    assert_eq!(release.status, ReleaseStatus::Failed);
    let failure = release.failure.clone().expect("why it failed");
    assert!(failure.cause.contains("--sha") && failure.cause.contains("before any wave"), "{}", failure.cause);
    assert!(release.waves.iter().all(|wave| wave.status == WaveStatus::Pending && wave.started_at.is_none()), "{:#?}", release.waves);
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Failed && e.message.contains("refused before any wave")), "{events:#?}");
    assert!(server.received_requests().await.unwrap().is_empty(), "Argo CD was asked something");
    assert_consistent(&baton, &release).await;
}

#[tokio::test]
async fn a_refused_sync_fails_the_wave_and_rolls_back_nothing_on_the_refused_target() {
    let window = json!({ "error": "Cannot sync: Blocked by sync window", "code": 7, "message": "Cannot sync: Blocked by sync window" });
    let unauthenticated = json!({ "error": "no session information", "code": 16, "message": "no session information" });
    let cases = [
        ("window", ResponseTemplate::new(403).set_body_json(window), "sync window"),
        ("401", ResponseTemplate::new(401).set_body_json(unauthenticated), "HTTP 401"),
        // Argo CD's answer cut by a proxy; the application shows no sync started after it.
        ("unreadable", ResponseTemplate::new(200).set_body_string("<html>upstream reset</html>"), "so nothing was changed"),
    ];
    for (case, answer, said) in cases {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/applications/box-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(application("0ld")))
            .mount(&server)
            .await;
        // `expect(1)`: one sync asked for, refused; none sent to put anything back.
        Mock::given(method("POST")).and(path("/api/v1/applications/box-1/sync")).respond_with(answer).expect(1).mount(&server).await;
        let fixture = argo_fixture(&server, &format!("BATON_E2E_ARGO_TOKEN_{}", case.to_uppercase()));
        let baton = fixture.baton();
        let mut input = cli_input(&format!("cli-{case}"));
        input["sha"] = json!(SHA);
        let execution = format!("exec-{case}");
        let outcome = baton.run(&execution, input).await;
        assert_outcome(&outcome, "rolled-back", "Baton.DeployFailed");

        let release = release_of(&baton, &execution).await;
        assert!(matches!(release.status, ReleaseStatus::Failed | ReleaseStatus::RolledBack), "{case}: {}", release.status);
        let canary = &release.waves[0];
        assert_eq!(canary.status, WaveStatus::Failed, "{case}: {canary:#?}");
        assert!(canary.deploys.iter().all(|deploy| !deploy.rollback), "{case}: a rollback ran on the refused target: {canary:#?}");
        let events = baton.ports().store.events(&release.id).await.unwrap();
        assert!(
            events.iter().any(|e| e.kind == EventKind::Failed && e.message.contains("refused") && e.message.contains(said)),
            "{case}: {events:#?}"
        );
        assert_consistent(&baton, &release).await;
    }
}
