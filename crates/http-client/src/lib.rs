//! The process's one HTTPS client, shared by every AWS SDK client (through baton-aws's adapter)
//! and by the HTTP providers (health checks, Slack, Datadog).
//!
//! Its trust store is built once, without reading a file: Mozilla's root certificates compiled
//! in as trust anchors (the `webpki-roots` crate), plus, when the conventional `SSL_CERT_FILE`
//! names a PEM file, the certificates of that file (a private CA, a TLS-inspecting proxy). The
//! system store (`/etc/ssl/certs`) is not read: on a Lambda cold start that cost more than
//! everything else the functions do before their first invocation (docs/packaging.md).

use reqwest::Client;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Names a PEM file whose certificates are trusted besides the compiled-in roots.
pub const EXTRA_CA_FILE_ENV: &str = "SSL_CERT_FILE";

/// The connect timeout of the shared client: the AWS SDK's default, so that SDK clients with
/// the default timeout configuration send through this very client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpsError {
    #[error("cannot read CA certificates from {path} ({EXTRA_CA_FILE_ENV}): {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A TLS configuration and the reqwest client built on it. Clone freely: clones share the
/// client's connection pool.
#[derive(Clone)]
pub struct Https {
    tls: rustls::ClientConfig,
    client: Client,
}

impl std::fmt::Debug for Https {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Https").field("connect_timeout", &CONNECT_TIMEOUT).finish_non_exhaustive()
    }
}

impl Https {
    /// Trusts the compiled-in roots and, when given, every certificate of `extra_ca_file` (PEM).
    pub fn new(extra_ca_file: Option<&Path>) -> Result<Https, HttpsError> {
        let tls = tls_config(extra_ca_file)?;
        let client = build_client(tls.clone(), Some(CONNECT_TIMEOUT))?;
        Ok(Https { tls, client })
    }

    /// The shared client: a Baton user agent, [`CONNECT_TIMEOUT`], no overall timeout (callers
    /// set one per request).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A client with the same trust store (no certificate is read again) but another connect
    /// timeout, for a caller that asks for one; it has its own connection pool.
    pub fn client_with_connect_timeout(&self, connect_timeout: Option<Duration>) -> Result<Client, HttpsError> {
        if connect_timeout == Some(CONNECT_TIMEOUT) {
            return Ok(self.client.clone());
        }
        build_client(self.tls.clone(), connect_timeout)
    }
}

/// The process's [`Https`], built on first use with the CA file of `SSL_CERT_FILE` when it is
/// set. A failure (an unreadable file) is kept: every caller gets the same error.
///
/// Its pooled connections belong to the tokio runtime that opened them, so it is for processes
/// with one runtime (the Lambda functions, the CLI). Tests that start a runtime per test and
/// talk to one server across tests (the emulator tests) build an [`Https`] per test.
pub fn shared() -> Result<&'static Https, HttpsError> {
    static SHARED: OnceLock<Result<Https, HttpsError>> = OnceLock::new();
    SHARED.get_or_init(|| Https::new(extra_ca_file(std::env::var_os(EXTRA_CA_FILE_ENV)).as_deref())).as_ref().map_err(Clone::clone)
}

/// `SSL_CERT_FILE`'s value as a path; unset or empty means none.
fn extra_ca_file(value: Option<OsString>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Mozilla's roots, plus the certificates of `extra_ca_file`; TLS 1.2 and 1.3 on ring, which,
/// unlike aws-lc-rs, runs no constructor at process start (docs/packaging.md).
pub fn tls_config(extra_ca_file: Option<&Path>) -> Result<rustls::ClientConfig, HttpsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpsError::Tls(e.to_string()))?
        .with_root_certificates(root_store(extra_ca_file)?)
        .with_no_client_auth())
}

/// The compiled-in anchors (static: nothing is parsed) and those of `extra_ca_file`.
fn root_store(extra_ca_file: Option<&Path>) -> Result<rustls::RootCertStore, HttpsError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = extra_ca_file {
        let failed = |message: String| HttpsError::CaFile { path: path.to_owned(), message };
        let certificates = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|e| failed(e.to_string()))?;
        if certificates.is_empty() {
            return Err(failed("no PEM certificate in it".into()));
        }
        let (added, _unusable) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(failed("none of its certificates can be a trust anchor".into()));
        }
    }
    Ok(roots)
}

fn build_client(tls: rustls::ClientConfig, connect_timeout: Option<Duration>) -> Result<Client, HttpsError> {
    let mut builder = Client::builder().user_agent(concat!("baton/", env!("CARGO_PKG_VERSION"))).tls_backend_preconfigured(tls);
    if let Some(timeout) = connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    builder.build().map_err(|e| HttpsError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_test_tls_server::{Reply, TlsServer};

    /// The error and its causes on one line.
    fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        std::iter::successors(Some(error), |&e| e.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
    }

    #[tokio::test]
    async fn trusts_a_server_whose_ca_is_in_the_extra_file() {
        let server = TlsServer::start(|_| Reply::status(200).body("hello")).await;
        let https = Https::new(Some(server.ca_file())).unwrap();
        let response = https.client().get(server.url("/greeting")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "hello");
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/greeting");
        assert_eq!(requests[0].header("user-agent"), Some(concat!("baton/", env!("CARGO_PKG_VERSION"))));
    }

    #[tokio::test]
    async fn refuses_a_self_signed_server_without_the_extra_file() {
        let server = TlsServer::start(|_| Reply::status(200)).await;
        let https = Https::new(None).unwrap();
        let error = https.client().get(server.url("/")).send().await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        let text = chain(&error);
        assert!(text.contains("certificate"), "not a certificate error: {text}");
        assert!(server.requests().is_empty(), "no request may reach an untrusted server");
    }

    #[tokio::test]
    async fn a_client_with_another_connect_timeout_keeps_the_trust_store() {
        let server = TlsServer::start(|_| Reply::status(204)).await;
        let https = Https::new(Some(server.ca_file())).unwrap();
        let client = https.client_with_connect_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(client.get(server.url("/")).send().await.unwrap().status(), 204);
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_an_error_naming_it() {
        let missing = Path::new("/nonexistent/baton-ca.pem");
        let err = tls_config(Some(missing)).unwrap_err();
        assert!(matches!(&err, HttpsError::CaFile { path, .. } if path == missing), "{err}");

        let dir = std::env::temp_dir().join(format!("baton-http-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = tls_config(Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ssl_cert_file_unset_or_empty_adds_nothing() {
        assert_eq!(extra_ca_file(None), None);
        assert_eq!(extra_ca_file(Some(OsString::new())), None);
        assert_eq!(extra_ca_file(Some("/etc/ca.pem".into())), Some(PathBuf::from("/etc/ca.pem")));
    }

    #[tokio::test]
    async fn the_extra_file_adds_to_the_compiled_in_roots() {
        let server = TlsServer::start(|_| Reply::status(200)).await;
        let builtin = webpki_roots::TLS_SERVER_ROOTS.len();
        assert!(builtin > 100, "Mozilla's roots: {builtin}");
        assert_eq!(root_store(None).unwrap().len(), builtin);
        assert_eq!(root_store(Some(server.ca_file())).unwrap().len(), builtin + 1);
    }
}
