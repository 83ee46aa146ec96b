//! The AWS SDK's HTTP client, implemented over the process's one reqwest client
//! ([`baton_http_client`]), and the one place every SDK configuration is loaded ([`sdk_config`]).
//!
//! The SDK's own HTTPS stack (`default-https-client`: hyper, rustls and the system trust store
//! read at client construction) is not compiled in; every SDK client sends through
//! [`ReqwestHttpClient`], so the SDK and the HTTP providers share one trust store and one
//! connection pool.

use crate::record::{OperationRecorder, RECORD_ENV};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::ErrorKind;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use baton_http_client::{Https, HttpsError};
use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The standard AWS configuration chain (region, credentials, `AWS_ENDPOINT_URL*`, profiles),
/// sending through the process's shared HTTPS client. Every SDK client of Baton comes from here.
pub async fn sdk_config() -> Result<SdkConfig, HttpsError> {
    Ok(sdk_config_with(baton_http_client::shared()?.clone()).await)
}

/// [`sdk_config`] over the given client (tests trust a local CA through it).
pub async fn sdk_config_with(https: Https) -> SdkConfig {
    let mut client = ReqwestHttpClient::new(https);
    match OperationRecorder::from_env() {
        Ok(recorder) => client.recorder = recorder.map(Arc::new),
        // Only the local stack asks for a record, and its IAM check fails on a missing one.
        Err(err) => eprintln!("baton: cannot open {RECORD_ENV} for the AWS operation record: {err}"),
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(client);
    if environment_has_credentials(|name| std::env::var(name).ok()) {
        // The standard credentials chain asks the environment first and, when it holds keys,
        // never asks the rest; but building the rest (an STS client for web identity, with its
        // endpoint rules, ECS and IMDS clients) costs a Lambda cold start about 0.1 ms. Lambda
        // always sets the keys, so take the chain's answer directly.
        loader = loader.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new());
    }
    if environment_has_region(|name| std::env::var(name).ok()) {
        // Likewise the standard region chain: the environment first, then the profile, then
        // IMDS, whose client (with its token plugin) is built even when never asked (about a
        // tenth of the SDK's set-up instructions at a cold start). Lambda always sets AWS_REGION.
        loader = loader.region(aws_config::environment::EnvironmentVariableRegionProvider::new());
    }
    loader.load().await
}

/// Whether the chain's environment provider would answer: an access key and a secret key, not
/// blank (`AWS_SECRET_ACCESS_KEY`, or the legacy `SECRET_ACCESS_KEY`), as that provider reads them.
fn environment_has_credentials(var: impl Fn(&str) -> Option<String>) -> bool {
    let present = |name: &str| var(name).is_some_and(|value| !value.trim().is_empty());
    present("AWS_ACCESS_KEY_ID") && (present("AWS_SECRET_ACCESS_KEY") || present("SECRET_ACCESS_KEY"))
}

/// Whether the chain's environment region provider would answer: `AWS_REGION` or
/// `AWS_DEFAULT_REGION` set, whatever its value, as that provider reads them.
fn environment_has_region(var: impl Fn(&str) -> Option<String>) -> bool {
    var("AWS_REGION").is_some() || var("AWS_DEFAULT_REGION").is_some()
}

/// An SDK [`HttpClient`] over [`Https`]. SDK clients with the default connect timeout (the
/// SDK's and [`baton_http_client::CONNECT_TIMEOUT`] are the same) use the shared client itself;
/// another connect timeout gets a client of its own with the same trust store, made once.
#[derive(Debug, Clone)]
pub struct ReqwestHttpClient {
    https: Https,
    by_connect_timeout: Arc<Mutex<HashMap<Option<Duration>, reqwest::Client>>>,
    /// Set by [`RECORD_ENV`]: every request's IAM actions are appended to a file.
    recorder: Option<Arc<OperationRecorder>>,
}

impl ReqwestHttpClient {
    pub fn new(https: Https) -> ReqwestHttpClient {
        ReqwestHttpClient { https, by_connect_timeout: Arc::default(), recorder: None }
    }

    fn client(&self, connect_timeout: Option<Duration>) -> Result<reqwest::Client, HttpsError> {
        if connect_timeout == Some(baton_http_client::CONNECT_TIMEOUT) {
            return Ok(self.https.client().clone());
        }
        let mut clients = self.by_connect_timeout.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&connect_timeout) {
            return Ok(client.clone());
        }
        let client = self.https.client_with_connect_timeout(connect_timeout)?;
        clients.insert(connect_timeout, client.clone());
        Ok(client)
    }
}

impl HttpClient for ReqwestHttpClient {
    /// The SDK asks for a connector on every attempt; this is a map lookup at most.
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        let client = self.client(settings.connect_timeout()).map_err(|e| Arc::new(e.to_string()));
        SharedHttpConnector::new(ReqwestConnector { client, read_timeout: settings.read_timeout(), recorder: self.recorder.clone() })
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    /// A client that could not be built fails every request with the reason.
    client: Result<reqwest::Client, Arc<String>>,
    read_timeout: Option<Duration>,
    recorder: Option<Arc<OperationRecorder>>,
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        if let Some(recorder) = &self.recorder {
            recorder.record(&request);
        }
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(message) => return HttpConnectorFuture::ready(Err(ConnectorError::other(message.to_string().into(), None))),
        };
        let request = match to_reqwest(request) {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err))),
        };
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let exchange = async {
                let response = client.execute(request).await.map_err(connector_error)?;
                from_reqwest(response).await
            };
            match read_timeout {
                // As the SDK's own client: the read timeout bounds the time from sending the
                // request to the response (here: its whole body, which the SDK reads anyway).
                Some(limit) => tokio::time::timeout(limit, exchange)
                    .await
                    .unwrap_or_else(|_| Err(ConnectorError::timeout(format!("no response within the read timeout ({limit:?})").into()))),
                None => exchange.await,
            }
        })
    }
}

/// The SDK's request as a reqwest one. Baton's calls all have in-memory bodies; a streaming
/// body (an S3 upload, say) is refused rather than sent wrong.
fn to_reqwest(request: HttpRequest) -> Result<reqwest::Request, Box<dyn Error + Send + Sync>> {
    let request = request.try_into_http1x()?;
    let (parts, body) = request.into_parts();
    let bytes = body.bytes().ok_or("streaming request bodies are not supported by Baton's HTTP client")?.to_vec();
    Ok(reqwest::Request::try_from(http::Request::from_parts(parts, bytes))?)
}

async fn from_reqwest(response: reqwest::Response) -> Result<HttpResponse, ConnectorError> {
    let mut answer = http::Response::builder().status(response.status()).version(response.version());
    if let Some(headers) = answer.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await.map_err(connector_error)?;
    let answer = answer.body(SdkBody::from(body)).map_err(|e| ConnectorError::other(e.into(), None))?;
    HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
}

/// Sorts a reqwest failure the way the SDK's own client sorts hyper's, so its retry strategy
/// acts the same: timeouts and I/O failures (connection refused or reset, a failed handshake)
/// are retried as transient; a connection closed before the answer is a transient error.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        return ConnectorError::timeout(error.into());
    }
    if error.is_builder() {
        return ConnectorError::user(error.into());
    }
    if error.is_connect() {
        return ConnectorError::io(error.into()).never_connected();
    }
    if let Some(hyper) = find_source::<hyper::Error>(&error) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(error.into());
        }
        if hyper.is_user() {
            return ConnectorError::user(error.into());
        }
        if hyper.is_closed() || hyper.is_canceled() || find_source::<std::io::Error>(hyper).is_some() {
            return ConnectorError::io(error.into());
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(error.into(), Some(ErrorKind::TransientError));
        }
    }
    if find_source::<std::io::Error>(&error).is_some() {
        return ConnectorError::io(error.into());
    }
    ConnectorError::other(error.into(), None)
}

fn find_source<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AwsError;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::{Credentials, Region};
    use aws_sdk_dynamodb::error::SdkError;
    use aws_smithy_runtime_api::client::result::DispatchFailure;
    use baton_test_tls_server::{Recorded, Reply, TlsServer};

    const JSON: &str = "application/x-amz-json-1.0";

    /// A DynamoDB client over [`ReqwestHttpClient`] talking to `server`, trusting its CA when
    /// `trust` is set; `attempts` tries per call, backing off 10 ms.
    async fn dynamodb(server: &TlsServer, trust: bool, attempts: u32, read_timeout: Option<Duration>) -> aws_sdk_dynamodb::Client {
        let https = Https::new(trust.then(|| server.ca_file())).unwrap();
        let mut timeouts = TimeoutConfig::builder().connect_timeout(baton_http_client::CONNECT_TIMEOUT);
        if let Some(limit) = read_timeout {
            timeouts = timeouts.read_timeout(limit);
        }
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(ReqwestHttpClient::new(https))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(server.url(""))
            .retry_config(RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(Duration::from_millis(10)))
            .timeout_config(timeouts.build())
            .load()
            .await;
        aws_sdk_dynamodb::Client::new(&config)
    }

    fn dispatch_failure<E: std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) -> &DispatchFailure {
        match err {
            SdkError::DispatchFailure(failure) => failure,
            other => panic!("not a dispatch failure: {other:?}"),
        }
    }

    fn list_tables_reply(_: &Recorded) -> Reply {
        Reply::status(200).header("content-type", JSON).header("x-amzn-requestid", "req-1").body(r#"{"TableNames":["releases","catalog"]}"#)
    }

    #[tokio::test]
    async fn the_sdk_sends_through_the_shared_client_to_a_trusted_server() {
        let server = TlsServer::start(list_tables_reply).await;
        let client = dynamodb(&server, true, 1, None).await;
        let output = client.list_tables().limit(5).send().await.unwrap();
        assert_eq!(output.table_names(), ["releases", "catalog"]);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/"));
        assert_eq!(request.header("x-amz-target"), Some("DynamoDB_20120810.ListTables"));
        assert!(request.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")), "{request:?}");
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(), serde_json::json!({"Limit": 5}));
        assert_eq!(request.header("content-length"), Some(request.body.len().to_string().as_str()));
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_dispatch_failure_naming_the_certificate() {
        let server = TlsServer::start(list_tables_reply).await;
        let client = dynamodb(&server, false, 1, None).await;
        let err = client.list_tables().send().await.unwrap_err();
        let failure = dispatch_failure(&err);
        assert!(failure.is_io(), "{err:?}");
        let text = AwsError::from_sdk("ListTables", err).to_string();
        assert!(text.contains("certificate"), "{text}");
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn a_read_timeout_is_the_sdks_timeout_and_is_retried() {
        let server = TlsServer::start(|r| list_tables_reply(r).delay(Duration::from_secs(3))).await;
        let client = dynamodb(&server, true, 2, Some(Duration::from_millis(300))).await;
        let started = std::time::Instant::now();
        let err = client.list_tables().send().await.unwrap_err();
        let failure = dispatch_failure(&err);
        assert!(failure.is_timeout(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "the timeout did not cut the wait: {:?}", started.elapsed());
        // Transient: the SDK's retry strategy tried again.
        assert_eq!(server.requests().len(), 2);
        assert!(matches!(AwsError::from_sdk("ListTables", err), AwsError::Unavailable { .. }));
    }

    #[tokio::test]
    async fn error_statuses_reach_the_sdk_as_service_errors() {
        let server = TlsServer::start(|r| {
            let table = r.body.windows(7).any(|w| w == b"missing");
            let (status, kind) = if table { (400, "ResourceNotFoundException") } else { (500, "InternalServerError") };
            Reply::status(status)
                .header("content-type", JSON)
                .body(format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"from the test server"}}"#))
        })
        .await;
        let client = dynamodb(&server, true, 2, None).await;

        let err = client.describe_table().table_name("missing").send().await.unwrap_err();
        assert_eq!(
            AwsError::from_sdk("DescribeTable", err),
            AwsError::Rejected {
                operation: "DescribeTable",
                code: "ResourceNotFoundException".into(),
                message: "from the test server".into()
            }
        );
        assert_eq!(server.requests().len(), 1, "a 400 is not retried");

        let err = client.describe_table().table_name("other").send().await.unwrap_err();
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(500));
        assert!(matches!(AwsError::from_sdk("DescribeTable", err), AwsError::Unavailable { .. }));
        assert_eq!(server.requests().len(), 3, "a 500 is retried");
    }

    #[tokio::test]
    async fn a_streaming_body_is_refused_not_sent() {
        let server = TlsServer::start(list_tables_reply).await;
        let client = ReqwestHttpClient::new(Https::new(Some(server.ca_file())).unwrap());
        let components = aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder::for_tests().build().unwrap();
        let connector = client.http_connector(&HttpConnectorSettings::default(), &components);
        let mut request = HttpRequest::new(SdkBody::taken());
        request.set_uri(server.url("/")).unwrap();
        let err = connector.call(request).await.unwrap_err();
        assert!(err.is_user(), "{err:?}");
        assert!(err.into_source().to_string().contains("streaming request bodies are not supported"));
        assert!(server.requests().is_empty());
    }

    #[test]
    fn environment_credentials_and_region_are_taken_only_when_the_chains_would_take_them() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        assert!(environment_has_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(environment_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", " "),
            ("SECRET_ACCESS_KEY", "s")
        ])));
        assert!(!environment_has_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKID")])));
        assert!(!environment_has_credentials(env(&[("AWS_ACCESS_KEY_ID", "  "), ("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(!environment_has_credentials(env(&[("AWS_SECRET_ACCESS_KEY", "s")])));
        assert!(environment_has_region(env(&[("AWS_REGION", "eu-west-1")])));
        assert!(environment_has_region(env(&[("AWS_DEFAULT_REGION", "eu-west-1")])));
        assert!(!environment_has_region(env(&[("AWS_PROFILE", "ci")])));
    }

    #[tokio::test]
    async fn sdk_config_sets_the_shared_http_client() {
        let config = sdk_config().await.unwrap();
        assert!(config.http_client().is_some(), "without it the SDK has no HTTP client at all");
    }
}
