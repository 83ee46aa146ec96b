//! The dashboard over HTTP: read-only GETs of [`Site::page`], loopback unless a token guards it.

use crate::{Page, Site};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;

/// Inline styles and script only, and fetches of the page's own origin: a value in a record
/// that slipped past escaping still could not load or send anything.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const TOKEN_COOKIE: &str = "baton-dashboard-token";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve the dashboard on {0} without a token: it is reachable from other machines (pass --token or set BATON_DASHBOARD_TOKEN, or listen on 127.0.0.1)"
    )]
    ExposedWithoutToken(SocketAddr),
    #[error("cannot accept connections: {0}")]
    Accept(std::io::Error),
}

/// Serves `site` on `listener` until the future is dropped. A listener on anything but loopback
/// needs a `token`: requests then carry it as `Authorization: Bearer`, or as `?token=` once (the
/// answer sets a cookie so the page's own refreshes carry it).
pub async fn serve(site: Arc<Site>, listener: TcpListener, token: Option<String>) -> Result<(), ServeError> {
    let local = listener.local_addr().map_err(ServeError::Accept)?;
    if !local.ip().is_loopback() && token.as_deref().is_none_or(str::is_empty) {
        return Err(ServeError::ExposedWithoutToken(local));
    }
    let token: Option<Arc<str>> = token.filter(|t| !t.is_empty()).map(Arc::from);
    let cache = Arc::new(Rendered::default());
    loop {
        let (stream, _) = listener.accept().await.map_err(ServeError::Accept)?;
        let (site, token, cache) = (site.clone(), token.clone(), cache.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (site, token, cache) = (site.clone(), token.clone(), cache.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(&site, &cache, token.as_deref(), request).await) }
            });
            if let Err(err) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "dashboard connection ended with an error");
            }
        });
    }
}

/// Pages rendered within the site's freshness, by path: the store is read once per page and
/// interval however many viewers poll it.
#[derive(Default)]
struct Rendered(Mutex<HashMap<String, (Instant, Page)>>);

impl Rendered {
    async fn page(&self, site: &Site, path: &str) -> Result<Option<Page>, baton_domain::ports::StoreError> {
        let fresh = |at: &Instant| at.elapsed() < site.freshness();
        if let Some((_, page)) = self.0.lock().expect("the page cache is never poisoned").get(path).filter(|(at, _)| fresh(at)) {
            return Ok(Some(page.clone()));
        }
        let page = site.page(path, chrono::Utc::now()).await?;
        let mut pages = self.0.lock().expect("the page cache is never poisoned");
        pages.retain(|_, (at, _)| fresh(at));
        if let Some(page) = &page {
            pages.insert(path.to_owned(), (Instant::now(), page.clone()));
        }
        Ok(page)
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// Whether `request` carries `token`; and whether it came as `?token=` (to be set as a cookie).
fn authorised(request: &Request<Incoming>, token: &str) -> (bool, bool) {
    let bearer = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let cookie = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE).and_then(|rest| rest.strip_prefix('=')))
        .any(|value| constant_time_eq(value, token));
    let query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.strip_prefix("token="))
        .any(|v| constant_time_eq(v, token));
    (bearer.is_some_and(|b| constant_time_eq(b, token)) || cookie || query, query)
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn answer(site: &Site, cache: &Rendered, token: Option<&str>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "the dashboard is read-only");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut set_cookie = None;
    if let Some(token) = token {
        match authorised(&request, token) {
            (false, _) => return plain(StatusCode::UNAUTHORIZED, "this dashboard needs its token: open it with ?token=<token>"),
            (true, true) => set_cookie = Some(format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")),
            (true, false) => {}
        }
    }
    let path = request.uri().path();
    let mut response = match cache.page(site, path).await {
        Ok(Some(page)) => {
            let mut response = Response::new(Full::new(Bytes::from(page.body)));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(page.content_type));
            response
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "no such page: the Now view is at /"),
        Err(err) => {
            tracing::warn!(error = %err, path, "the dashboard could not read the store");
            plain(StatusCode::SERVICE_UNAVAILABLE, &format!("cannot read the release store: {err}"))
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}
