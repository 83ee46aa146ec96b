//! The generated Datadog dashboards: their JSON has the shape the Dashboards API documents, and
//! a push against a local server answering as that API does (list, create 200, replace 200,
//! 400 with errors, 403, 429) creates once, then replaces the same dashboard.

use baton_domain::catalog::{CatalogLoader, ServiceEntry};
use baton_domain::error::chain_text;
use baton_providers::Secret;
use baton_providers::datadog_dashboards::{DashboardsApi, service_dashboard, service_title, team_dashboard};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_KEY: &str = "dd_api_TOPSECRET_0123456789abcdef";
const APP_KEY: &str = "dd_app_TOPSECRET_fedcba9876543210";

fn entries() -> Vec<ServiceEntry> {
    let text = |name: &str, team: &str| {
        format!(
            "schema-version: v2.2\ndd-service: {name}\nteam: {team}\nextensions:\n  baton:\n    environment: production\n    release-branch: main\n    build: {{provider: command, command: [\"true\"]}}\n    deploy:\n      provider: command\n      command: [\"true\"]\n      waves:\n        - {{name: all, targets: [a]}}\n    health:\n      gates:\n        - {{provider: command, command: [\"true\"]}}\n"
        )
    };
    ["web", "api", "batch"]
        .iter()
        .zip(["payments", "payments", "data"])
        .flat_map(|(name, team)| {
            let (entries, diagnostics) = CatalogLoader::new(baton_providers::registry()).parse(&format!("{name}.yaml"), &text(name, team));
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            entries
        })
        .collect()
}

/// The Dashboards API's required shape: a title, an ordered layout, widgets each with a typed
/// definition; a timeseries has requests with a query, and its event overlays a query each.
fn assert_dashboard_shape(dashboard: &Value) {
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(dashboard["layout_type"], "ordered");
    let widgets = dashboard["widgets"].as_array().unwrap();
    assert!(!widgets.is_empty());
    for widget in widgets {
        let definition = &widget["definition"];
        match definition["type"].as_str().unwrap() {
            "note" => assert!(definition["content"].as_str().is_some_and(|c| !c.is_empty())),
            "timeseries" => {
                let requests = definition["requests"].as_array().unwrap();
                assert!(!requests.is_empty() && requests.iter().all(|r| r["q"].as_str().is_some_and(|q| !q.is_empty())));
                assert!(["line", "bars", "area"].contains(&requests[0]["display_type"].as_str().unwrap()));
                for overlay in definition["events"].as_array().unwrap() {
                    assert!(overlay["q"].as_str().is_some_and(|q| q.contains("source:baton")));
                }
            }
            "query_value" => {
                let requests = definition["requests"].as_array().unwrap();
                assert_eq!(requests.len(), 1, "a query value has one request");
                assert!(["sum", "avg", "min", "max", "last"].contains(&requests[0]["aggregator"].as_str().unwrap()));
                assert!(requests[0]["q"].as_str().is_some_and(|q| q.starts_with("sum:dora.")));
            }
            other => panic!("a widget type the ordered layout's generator does not make: {other}"),
        }
    }
}

#[test]
fn a_services_and_a_teams_dashboards_have_the_documented_shape_and_carry_the_deploy_markers() {
    let entries = entries();
    let service = service_dashboard(&entries[0], "http.request");
    assert_dashboard_shape(&service);
    assert_eq!(service["title"], "Baton: web releases");
    let requests = &service["widgets"][1]["definition"]["requests"][0]["q"];
    assert_eq!(requests, "sum:trace.http.request.hits{env:production AND (service:web)}.as_rate()");
    assert_eq!(service["widgets"][1]["definition"]["events"][0]["q"], "source:baton env:production (service:web)");

    let team = team_dashboard("payments", &entries, "flask.request").unwrap();
    assert_dashboard_shape(&team);
    assert_eq!(team["widgets"][1]["definition"]["events"][0]["q"], "source:baton env:production (service:web OR service:api)");
    assert!(team["widgets"][3]["definition"]["requests"][0]["q"].as_str().unwrap().starts_with("p95:trace.flask.request{"));
    assert!(team_dashboard("nobody", &entries, "http.request").is_none());
}

fn api(server: &MockServer) -> DashboardsApi {
    DashboardsApi::new(baton_providers::http_client().unwrap(), &server.uri(), Secret::new(API_KEY.into()), Secret::new(APP_KEY.into()))
        .unwrap()
}

fn keyed(mock: wiremock::MockBuilder) -> wiremock::MockBuilder {
    mock.and(header("DD-API-KEY", API_KEY)).and(header("DD-APPLICATION-KEY", APP_KEY))
}

#[tokio::test]
async fn a_push_creates_the_dashboard_once_then_replaces_it_by_its_title() {
    let server = MockServer::start().await;
    let dashboard = service_dashboard(&entries()[0], "http.request");
    keyed(Mock::given(method("GET")).and(path("/api/v1/dashboard")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"dashboards": [{"id": "other-1", "title": "Someone else's"}]})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    keyed(Mock::given(method("POST")).and(path("/api/v1/dashboard")).and(body_partial_json(json!({"title": service_title("web")}))))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"id": "abc-def-ghi", "url": "/dashboard/abc-def-ghi/baton-web-releases", "title": service_title("web")}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    let first = api(&server).push(&dashboard).await.unwrap();
    assert_eq!((first.id.as_str(), first.created), ("abc-def-ghi", true));

    keyed(Mock::given(method("GET")).and(path("/api/v1/dashboard")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"dashboards": [{"id": "abc-def-ghi", "title": service_title("web")}]})),
        )
        .mount(&server)
        .await;
    keyed(Mock::given(method("PUT")).and(path("/api/v1/dashboard/abc-def-ghi")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "abc-def-ghi", "title": service_title("web")})))
        .expect(1)
        .mount(&server)
        .await;
    let again = api(&server).push(&dashboard).await.unwrap();
    assert_eq!((again.id.as_str(), again.created), ("abc-def-ghi", false));
}

async fn refused_push(status: u16, body: Value, extra: &[(&str, &str)]) -> String {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_json(body);
    for (name, value) in extra {
        answer = answer.insert_header(*name, *value);
    }
    Mock::given(method("GET")).and(path("/api/v1/dashboard")).respond_with(answer).mount(&server).await;
    let err = api(&server).push(&service_dashboard(&entries()[0], "http.request")).await.unwrap_err();
    let text = chain_text(&err);
    assert!(!text.contains("TOPSECRET"), "a key in the error: {text}");
    text
}

#[tokio::test]
async fn refusals_say_what_to_fix_and_a_rate_limit_says_until_when() {
    let invalid = refused_push(400, json!({"errors": ["Invalid widget definition"]}), &[]).await;
    assert!(invalid.contains("Invalid widget definition"), "{invalid}");
    let denied = refused_push(403, json!({"errors": ["Forbidden"]}), &[]).await;
    assert!(denied.contains("403") && denied.contains("dashboards_write"), "{denied}");
    let limited = refused_push(429, json!({"errors": ["Too many requests"]}), &[("X-RateLimit-Reset", "120")]).await;
    assert!(limited.contains("rate limiting") && limited.contains("nothing is sent to it before"), "{limited}");
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_the_push_goes_through() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dashboard"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/dashboard"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"dashboards": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/dashboard"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x-1"})))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(api(&server).push(&service_dashboard(&entries()[0], "http.request")).await.unwrap().id, "x-1");
}
