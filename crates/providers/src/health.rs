//! The `http` health gate: an HTTP endpoint's answer, sampled on this machine.

use crate::http::describe;
use async_trait::async_trait;
use baton_domain::ports::{GateReading, HealthGate, HealthRequest, ProviderError};
use std::time::Duration;

/// One answer may take this long; a slower one is an unhealthy sample.
const HTTP_SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a body is read to look for `body-contains`: a health page is small, and a
/// hostile or broken endpoint must not make the sample read without end.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// One request per sample: healthy when the status is expected (any 2xx unless `expect-status`
/// says) and the body contains `body-contains`. No answer, a timeout or another status is an
/// unhealthy sample; the watch rule decides what a run of them means.
pub struct HttpGateSampler {
    url: reqwest::Url,
    expect_status: Vec<u16>,
    body_contains: Option<String>,
    timeout: Duration,
    http: reqwest::Client,
}

impl HttpGateSampler {
    /// `source` is the catalog file, for error messages.
    pub fn new(spec: &HttpGate, source: &str, http: reqwest::Client) -> Result<HttpGateSampler, ProviderError> {
        let rejected = |message: String| Err(ProviderError::rejected(format!("{source}: {message}")));
        let url = match reqwest::Url::parse(&spec.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(_) => return rejected(format!("extensions.baton.health.gates: url '{}' is not an http(s) URL", spec.url)),
            Err(e) => return rejected(format!("extensions.baton.health.gates: url '{}' is not a URL: {e}", spec.url)),
        };
        Ok(HttpGateSampler {
            url,
            expect_status: spec.expect_status.clone(),
            body_contains: spec.body_contains.clone(),
            timeout: HTTP_SAMPLE_TIMEOUT,
            http,
        })
    }

    fn expected(&self, status: reqwest::StatusCode) -> bool {
        if self.expect_status.is_empty() { status.is_success() } else { self.expect_status.contains(&status.as_u16()) }
    }

    /// The body's first [`MAX_BODY_BYTES`], as text.
    async fn body_start(mut response: reqwest::Response) -> Result<String, String> {
        let mut body = Vec::new();
        while body.len() < MAX_BODY_BYTES {
            match response.chunk().await.map_err(describe)? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        body.truncate(MAX_BODY_BYTES);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn reading(&self) -> Result<GateReading, String> {
        let response = self.http.get(self.url.clone()).timeout(self.timeout).send().await.map_err(describe)?;
        let status = response.status();
        if !self.expected(status) {
            return Ok(GateReading::Unhealthy { saw: format!("HTTP {status}") });
        }
        let Some(needle) = &self.body_contains else { return Ok(GateReading::Healthy { saw: format!("HTTP {status}") }) };
        let body = Self::body_start(response).await?;
        Ok(if body.contains(needle.as_str()) {
            GateReading::Healthy { saw: format!("HTTP {status}, body contains {needle:?}") }
        } else {
            GateReading::Unhealthy { saw: format!("HTTP {status}, body without {needle:?}") }
        })
    }
}

#[async_trait]
impl HealthGate for HttpGateSampler {
    fn describe(&self) -> String {
        format!("HTTP {}", self.url)
    }

    async fn sample(&self, _request: &HealthRequest) -> Result<GateReading, ProviderError> {
        let reading = self.reading().await.unwrap_or_else(|failure| GateReading::Unhealthy { saw: failure });
        tracing::debug!(target: "baton::health", url = self.url.as_str(), ?reading, "sampled");
        Ok(reading)
    }
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpGate {
    pub url: String,
    /// The statuses that are healthy; any 2xx when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_status: Vec<u16>,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
}

const GATE_HTTP: &[Field] = &[
    required("url", Kind::Url, "The endpoint sampled."),
    field("expect-status", Kind::HttpStatuses, "Statuses that are healthy; any 2xx by default."),
    field("body-contains", Kind::Text, "Text a healthy answer's body contains."),
];

pub const HTTP_GATE: ProviderShape = ProviderShape {
    slot: Slot::Gate,
    name: "http",
    doc: "An HTTP endpoint's answer.",
    fields: GATE_HTTP,
    at_least_one: None,
    local_only: false,
    run_word: None,
    through_model: through_model::<HttpGate>,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::health_request;
    use std::time::Instant;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    /// A client of this test's own: a shared one would reuse a pooled connection of a finished
    /// test's runtime when a later test's server gets the same port.
    fn http_client() -> Result<reqwest::Client, ProviderError> {
        Ok(baton_http_client::Https::new(None).unwrap().client().clone())
    }

    fn gate(url: String, expect_status: Vec<u16>, body_contains: Option<&str>) -> HttpGateSampler {
        let spec = HttpGate { url, expect_status, body_contains: body_contains.map(str::to_owned) };
        HttpGateSampler::new(&spec, "catalog/web.yaml", http_client().unwrap()).unwrap()
    }

    async fn answering(response: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET")).and(path("/healthz")).respond_with(response).mount(&server).await;
        server
    }

    async fn sample(gate: &HttpGateSampler) -> GateReading {
        gate.sample(&health_request()).await.unwrap()
    }

    #[tokio::test]
    async fn each_sample_is_one_request_judged_by_status_and_body() {
        let healthy = |saw: &str| GateReading::Healthy { saw: saw.into() };
        let unhealthy = |saw: &str| GateReading::Unhealthy { saw: saw.into() };
        let cases = [
            (ResponseTemplate::new(204), vec![], None, healthy("HTTP 204 No Content")),
            (ResponseTemplate::new(503), vec![], None, unhealthy("HTTP 503 Service Unavailable")),
            (ResponseTemplate::new(301), vec![], None, unhealthy("HTTP 301 Moved Permanently")),
            (ResponseTemplate::new(503), vec![200, 503], None, healthy("HTTP 503 Service Unavailable")),
            (ResponseTemplate::new(200), vec![204], None, unhealthy("HTTP 200 OK")),
            (
                ResponseTemplate::new(200).set_body_string("{\"status\":\"ok\"}"),
                vec![],
                Some("\"ok\""),
                healthy("HTTP 200 OK, body contains \"\\\"ok\\\"\""),
            ),
            (ResponseTemplate::new(200).set_body_string("degraded"), vec![], Some("ok"), unhealthy("HTTP 200 OK, body without \"ok\"")),
        ];
        for (response, expect_status, body_contains, expected) in cases {
            let server = answering(response).await;
            let reading = sample(&gate(format!("{}/healthz", server.uri()), expect_status.clone(), body_contains)).await;
            assert_eq!(reading, expected, "expect {expect_status:?}, body {body_contains:?}");
            assert_eq!(server.received_requests().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn only_the_start_of_a_huge_body_is_read() {
        let body = format!("{}ok", "x".repeat(MAX_BODY_BYTES));
        let server = answering(ResponseTemplate::new(200).set_body_string(body)).await;
        let reading = sample(&gate(format!("{}/healthz", server.uri()), vec![], Some("ok"))).await;
        assert!(matches!(reading, GateReading::Unhealthy { .. }), "{reading:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_unhealthy_sample() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let GateReading::Unhealthy { saw } = sample(&gate(format!("http://127.0.0.1:{port}/healthz"), vec![], None)).await else {
            panic!("healthy")
        };
        assert!(saw.to_lowercase().contains("connection refused"), "{saw}");
    }

    #[tokio::test]
    async fn a_slow_answer_is_an_unhealthy_sample() {
        let server = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
        let mut gate = gate(format!("{}/healthz", server.uri()), vec![], None);
        gate.timeout = Duration::from_millis(300);
        let started = Instant::now();
        let GateReading::Unhealthy { saw } = sample(&gate).await else { panic!("healthy") };
        assert!(saw.contains("timed out"), "{saw}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[test]
    fn urls_that_cannot_be_sampled_are_rejected() {
        for (url, expected) in [("localhost:8080/health", "is not an http(s) URL"), ("http://", "is not a URL")] {
            let spec = HttpGate { url: url.into(), expect_status: vec![], body_contains: None };
            let Err(ProviderError::Rejected { message, .. }) = HttpGateSampler::new(&spec, "catalog/web.yaml", http_client().unwrap())
            else {
                panic!("{url} was accepted")
            };
            assert!(message.starts_with("catalog/web.yaml: extensions.baton.health.gates") && message.contains(expected), "{message}");
        }
    }
}
