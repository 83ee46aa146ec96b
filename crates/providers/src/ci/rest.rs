//! What the `gitlab-ci`, `buildkite` and `circleci` providers share: a service's REST API at a base URL,
//! called with a token, each answer read whole and, when it is a refusal, turned into an error
//! that says what to check and never carries the token.

use crate::http::{Answer, CREATE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, RateLimits, Refused, endpoint, exchange, http_url};
use crate::secrets::Secret;
use baton_domain::ports::ProviderError;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use std::sync::Arc;
use std::time::Duration;

/// One service's API: where it is, how long a request may take, how its rate limits say when
/// to come back.
pub(crate) struct RestApi {
    /// "GitLab", "Buildkite", "CircleCI": who answered, in errors.
    pub service: &'static str,
    base: Url,
    timeout: Duration,
    /// For the request that creates a build: see [`CREATE_TIMEOUT`].
    create_timeout: Duration,
    http: reqwest::Client,
    wait: fn(&HeaderMap) -> Option<Duration>,
    limits: Arc<RateLimits>,
}

/// How a request carries its credential.
pub(crate) enum Credential<'a> {
    /// In a header of the service's own (GitLab's `PRIVATE-TOKEN`).
    Header(&'static str, &'a Secret),
    Bearer(&'a Secret),
    /// In the body (GitLab's trigger token), or not at all.
    None,
}

pub(crate) enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    Form(&'a [(String, String)]),
}

/// What a request is about, for the errors it may end in.
pub(crate) struct Call<'a> {
    /// What Baton was doing: "creating a pipeline of GitLab project acme/web on main".
    pub context: String,
    /// What to check when the credentials are refused (401 or 403).
    pub credentials: String,
    /// What a 404 most likely means.
    pub missing: String,
    /// Blanked out of anything quoted from the answer.
    pub secrets: &'a [&'a Secret],
    /// A non-2xx status that answers the call as well (422 to cancelling a finished build).
    pub also_ok: Option<StatusCode>,
}

impl RestApi {
    /// Refuses an `api_url` that is not an http(s) URL, with the reason for a catalog error.
    pub(crate) fn new(
        service: &'static str,
        api_url: &str,
        http: reqwest::Client,
        wait: fn(&HeaderMap) -> Option<Duration>,
    ) -> Result<RestApi, String> {
        let base = http_url(api_url).map_err(|why| format!("api-url {why}"))?;
        Ok(RestApi {
            service,
            base,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            create_timeout: CREATE_TIMEOUT,
            http,
            wait,
            limits: RateLimits::shared(),
        })
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub(crate) fn set_create_timeout(&mut self, timeout: Duration) {
        self.create_timeout = timeout;
    }

    /// Rate-limit holds other than the process's (tests, on a clock of their own).
    pub(crate) fn set_rate_limits(&mut self, limits: Arc<RateLimits>) {
        self.limits = limits;
    }

    /// The API's URL with `segments` appended, each percent-encoded.
    pub(crate) fn endpoint<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        endpoint(&self.base, segments)
    }

    /// Sends the request and returns a 2xx answer's (or `call.also_ok`'s) status and body;
    /// any other answer becomes the error it means.
    pub(crate) async fn call(
        &self,
        method: Method,
        url: Url,
        credential: Credential<'_>,
        body: Body<'_>,
        call: &Call<'_>,
    ) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        self.timed(self.timeout, method, url, credential, body, call).await
    }

    /// [`Self::call`] for the POST that creates a build, given [`CREATE_TIMEOUT`] (or the
    /// timeout set) to answer.
    pub(crate) async fn create(
        &self,
        url: Url,
        credential: Credential<'_>,
        body: Body<'_>,
        call: &Call<'_>,
    ) -> Result<Vec<u8>, ProviderError> {
        Ok(self.timed(self.create_timeout, Method::POST, url, credential, body, call).await?.1)
    }

    async fn timed(
        &self,
        timeout: Duration,
        method: Method,
        url: Url,
        credential: Credential<'_>,
        body: Body<'_>,
        call: &Call<'_>,
    ) -> Result<(StatusCode, Vec<u8>), ProviderError> {
        let build = || {
            let mut request = self.http.request(method.clone(), url.clone());
            request = match credential {
                Credential::Header(name, token) => request.header(name, token.expose()),
                Credential::Bearer(token) => request.bearer_auth(token.expose()),
                Credential::None => request,
            };
            match body {
                Body::Empty => request,
                Body::Json(json) => request.json(json),
                Body::Form(pairs) => request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(form(pairs)),
            }
        };
        let answer = exchange(&self.limits, self.service, build, timeout, &call.context, self.wait).await?;
        if answer.status.is_success() || call.also_ok == Some(answer.status) {
            return Ok((answer.status, answer.body));
        }
        Err(self.refusal(&answer, call))
    }

    fn refusal(&self, answer: &Answer, call: &Call<'_>) -> ProviderError {
        let refused = Refused {
            service: self.service,
            context: &call.context,
            credentials: &call.credentials,
            missing: &call.missing,
            secrets: call.secrets,
        };
        answer.refusal(&refused, (self.wait)(&answer.headers))
    }
}

/// `pairs` as `application/x-www-form-urlencoded`. reqwest is built without its `form` feature;
/// a URL's query serializer is that very encoding.
fn form(pairs: &[(String, String)]) -> String {
    let mut encoder = Url::parse("http://form.invalid/").expect("a valid URL");
    encoder.query_pairs_mut().extend_pairs(pairs);
    encoder.query().unwrap_or_default().to_owned()
}
