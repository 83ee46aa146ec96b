//! Health checks: an HTTP endpoint sampled until it answers 2xx enough times in a row, or a command.

use crate::command::{BatonEnv, CommandContext, CommandFields, CommandSpec};
use crate::http::describe;
use async_trait::async_trait;
use baton_domain::catalog::{CommandRun, HttpHealth};
use baton_domain::ports::{HealthChecker, HealthRequest, HealthVerdict, ProviderError};
use std::time::Duration;

const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Healthy after `consecutive` 2xx answers in a row, sampled every `interval`, giving up after
/// `max-samples`. A non-2xx answer, a connection error or a timeout ends the streak. Each
/// request may take as long as the interval (at least 1 s, at most 10 s).
pub struct HttpHealthChecker {
    url: reqwest::Url,
    consecutive: u32,
    interval: Duration,
    max_samples: u32,
    http: reqwest::Client,
}

impl HttpHealthChecker {
    /// `source` is the catalog file, for error messages.
    pub fn new(spec: &HttpHealth, source: &str, http: reqwest::Client) -> Result<HttpHealthChecker, ProviderError> {
        let rejected = |message: String| Err(ProviderError::Rejected(format!("{source}: {message}")));
        let url = match reqwest::Url::parse(&spec.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(_) => return rejected(format!("extensions.baton.health.url '{}' is not an http(s) URL", spec.url)),
            Err(e) => return rejected(format!("extensions.baton.health.url '{}' is not a URL: {e}", spec.url)),
        };
        if spec.consecutive == 0 {
            return rejected("extensions.baton.health.consecutive is 0: expected at least 1".into());
        }
        if spec.max_samples < spec.consecutive {
            return rejected(format!(
                "extensions.baton.health.max-samples ({}) is smaller than consecutive ({}): the check could never pass",
                spec.max_samples, spec.consecutive
            ));
        }
        Ok(HttpHealthChecker {
            url,
            consecutive: spec.consecutive,
            interval: Duration::from_secs(spec.interval.0),
            max_samples: spec.max_samples,
            http,
        })
    }

    /// One request: `Ok(status)` for 2xx, `Err(what went wrong)` otherwise.
    async fn sample(&self) -> Result<reqwest::StatusCode, String> {
        let timeout = self.interval.clamp(Duration::from_secs(1), Duration::from_secs(10));
        let response = self.http.get(self.url.clone()).timeout(timeout).send().await.map_err(describe)?;
        let status = response.status();
        if status.is_success() { Ok(status) } else { Err(format!("HTTP {status}")) }
    }
}

#[async_trait]
impl HealthChecker for HttpHealthChecker {
    async fn check(&self, _request: &HealthRequest) -> Result<HealthVerdict, ProviderError> {
        let url = self.url.as_str();
        let mut streak = 0;
        let mut last_failure = None;
        for sample in 1..=self.max_samples {
            if sample > 1 {
                tokio::time::sleep(self.interval).await;
            }
            match self.sample().await {
                Ok(status) => {
                    streak += 1;
                    tracing::debug!(target: "baton::health", url, sample, streak, "{status}");
                    if streak == self.consecutive {
                        return Ok(HealthVerdict::Healthy {
                            detail: format!("{streak} consecutive 2xx answers from {url} (last {status}; {sample} samples)"),
                        });
                    }
                }
                Err(failure) => {
                    tracing::info!(target: "baton::health", url, sample, "not healthy yet: {failure}");
                    streak = 0;
                    last_failure = Some(failure);
                }
            }
        }
        Ok(HealthVerdict::Unhealthy {
            reason: format!(
                "no {} consecutive 2xx answers from {url} within {} samples; last failure: {}",
                self.consecutive,
                self.max_samples,
                last_failure.as_deref().unwrap_or("none")
            ),
        })
    }
}

/// Healthy when `health.command` exits 0. It gets `BATON_WAVE`, `BATON_TARGETS`
/// (comma-separated) and `BATON_ARTIFACT` on top of the release variables.
pub struct CommandHealthChecker {
    ctx: CommandContext,
    command: CommandSpec,
}

impl CommandHealthChecker {
    pub fn new(spec: &CommandRun, ctx: CommandContext) -> Result<CommandHealthChecker, ProviderError> {
        let command = ctx.command("health check", "extensions.baton.health.command", CommandFields::of(spec), DEFAULT_COMMAND_TIMEOUT)?;
        Ok(CommandHealthChecker { ctx, command })
    }
}

#[async_trait]
impl HealthChecker for CommandHealthChecker {
    async fn check(&self, request: &HealthRequest) -> Result<HealthVerdict, ProviderError> {
        let env = BatonEnv::for_artifact(&request.service, &request.environment, &request.release_id, &request.artifact)
            .with("BATON_WAVE", &request.wave)
            .with("BATON_TARGETS", request.targets.join(","));
        let outcome = self.ctx.run(&self.command, env).await?;
        Ok(if outcome.succeeded() {
            HealthVerdict::Healthy { detail: outcome.summary() }
        } else {
            HealthVerdict::Unhealthy { reason: outcome.failure() }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_client;
    use crate::test_support::{entry_in, release_id, script};
    use baton_domain::catalog::Seconds;
    use baton_domain::release::Artifact;
    use std::time::Instant;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn request() -> HealthRequest {
        HealthRequest {
            service: "web".into(),
            environment: "production".into(),
            release_id: release_id(),
            wave: "canary".into(),
            targets: vec!["host-1".into(), "host-2".into()],
            artifact: Artifact { reference: "web:2".into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
        }
    }

    fn http(url: String, consecutive: u32, max_samples: u32, interval: u64) -> HttpHealthChecker {
        let spec = HttpHealth { url, consecutive, interval: Seconds(interval), max_samples };
        HttpHealthChecker::new(&spec, "catalog/web.yaml", http_client().unwrap()).unwrap()
    }

    /// Answers `statuses` in order, one request each, then 500 for anything more.
    async fn server(statuses: &[u16]) -> MockServer {
        let server = MockServer::start().await;
        for (priority, &status) in statuses.iter().enumerate() {
            Mock::given(method("GET"))
                .and(path("/healthz"))
                .respond_with(ResponseTemplate::new(status))
                .up_to_n_times(1)
                .with_priority(u8::try_from(priority + 1).unwrap())
                .mount(&server)
                .await;
        }
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(500)).with_priority(u8::MAX).mount(&server).await;
        server
    }

    #[tokio::test]
    async fn consecutive_successes_are_healthy() {
        let server = server(&[200, 204, 200]).await;
        let started = Instant::now();
        let verdict = http(format!("{}/healthz", server.uri()), 3, 5, 1).check(&request()).await.unwrap();
        let HealthVerdict::Healthy { detail } = verdict else { panic!("{verdict:?}") };
        assert!(detail.starts_with("3 consecutive 2xx answers from http://") && detail.contains("3 samples"), "{detail}");
        // Three samples, an interval apart.
        assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_failure_resets_the_streak() {
        let server = server(&[200, 503, 200, 200, 200]).await;
        let verdict = http(format!("{}/healthz", server.uri()), 3, 6, 0).check(&request()).await.unwrap();
        let HealthVerdict::Healthy { detail } = verdict else { panic!("{verdict:?}") };
        assert!(detail.contains("5 samples"), "{detail}");
    }

    #[tokio::test]
    async fn never_healthy_names_the_url_and_the_last_status() {
        let server = server(&[200, 200, 502, 200]).await;
        let url = format!("{}/healthz", server.uri());
        let verdict = http(url.clone(), 3, 6, 0).check(&request()).await.unwrap();
        let HealthVerdict::Unhealthy { reason } = verdict else { panic!("{verdict:?}") };
        assert!(reason.starts_with(&format!("no 3 consecutive 2xx answers from {url} within 6 samples")), "{reason}");
        assert!(reason.ends_with("; last failure: HTTP 500 Internal Server Error"), "{reason}");
        assert_eq!(server.received_requests().await.unwrap().len(), 6);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unhealthy() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let verdict = http(format!("http://127.0.0.1:{port}/healthz"), 1, 2, 0).check(&request()).await.unwrap();
        let HealthVerdict::Unhealthy { reason } = verdict else { panic!("{verdict:?}") };
        assert!(reason.contains(&format!("127.0.0.1:{port}")) && reason.to_lowercase().contains("connection refused"), "{reason}");
    }

    #[tokio::test]
    async fn a_slow_answer_counts_as_a_failure() {
        let server = MockServer::start().await;
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).mount(&server).await;
        let started = Instant::now();
        let verdict = http(format!("{}/healthz", server.uri()), 1, 1, 0).check(&request()).await.unwrap();
        let HealthVerdict::Unhealthy { reason } = verdict else { panic!("{verdict:?}") };
        assert!(reason.contains("timed out"), "{reason}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[test]
    fn impossible_specs_are_rejected() {
        let spec = |url: &str, consecutive, max_samples| HttpHealth { url: url.into(), consecutive, interval: Seconds(1), max_samples };
        for (spec, expected) in [
            (spec("localhost:8080/health", 1, 1), "is not an http(s) URL"),
            (spec("http://", 1, 1), "is not a URL"),
            (spec("http://localhost/health", 0, 1), "consecutive is 0"),
            (spec("http://localhost/health", 3, 2), "max-samples (2) is smaller than consecutive (3)"),
        ] {
            let result = HttpHealthChecker::new(&spec, "catalog/web.yaml", http_client().unwrap());
            let Err(ProviderError::Rejected(message)) = result else { panic!("{spec:?} was accepted") };
            assert!(message.starts_with("catalog/web.yaml: extensions.baton.health.") && message.contains(expected), "{message}");
        }
    }

    #[tokio::test]
    async fn a_health_command_sees_the_wave_and_its_targets() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = script(
            dir.path(),
            "health.sh",
            "echo \"$BATON_WAVE $BATON_TARGETS $BATON_ARTIFACT\"; [ \"$BATON_TARGETS\" = host-1,host-2 ] || exit 4",
        );
        let spec = CommandRun::new(argv);
        let verdict = CommandHealthChecker::new(&spec, ctx.clone()).unwrap().check(&request()).await.unwrap();
        assert!(matches!(&verdict, HealthVerdict::Healthy { detail } if detail.ends_with("exited with code 0")), "{verdict:?}");

        let mut one_target = request();
        one_target.targets.pop();
        let verdict = CommandHealthChecker::new(&spec, ctx).unwrap().check(&one_target).await.unwrap();
        let HealthVerdict::Unhealthy { reason } = verdict else { panic!("{verdict:?}") };
        assert!(reason.contains("exited with code 4; last output:\ncanary host-1 web:2"), "{reason}");
    }
}
