//! The providers' callbacks on this machine: `baton` listens on loopback and serves
//! `POST /<provider>[/...]` as the provider-events function serves its URL on AWS, with the same
//! receivers (built from the catalog's `events-secret`s) and the same delivery
//! ([`baton_domain::waits::answer_callback`]), the parked tasks being this process's executor's.

use crate::{ExecutorTokens, LocalBaton, LocalError};
use baton_domain::ports::InboundRequest;
use baton_domain::waits::{self, CallbackAnswer, MAX_CALLBACK_BYTES, Receivers};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a caller may take to send a request's headers, then its body: a stalled connection
/// is dropped instead of held.
const READ_WITHIN: Duration = Duration::from_secs(10);

/// Why `baton` cannot listen where it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(
        "{0} is not a loopback address: provider callbacks are received on this machine only (127.0.0.1 or [::1]); \
         reach it from outside through a tunnel (--events-url), or allow other interfaces explicitly"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen for provider callbacks on {0}: the port is in use (another baton, or another program); pick another port")]
    InUse(SocketAddr),
    #[error("cannot listen for provider callbacks on {address}: {source}")]
    Io { address: SocketAddr, source: io::Error },
}

/// Binds `address` for the callbacks: a loopback address unless `any_interface`.
pub async fn bind_callbacks(address: SocketAddr, any_interface: bool) -> Result<TcpListener, ListenError> {
    if !address.ip().is_loopback() && !any_interface {
        return Err(ListenError::NotLoopback(address));
    }
    TcpListener::bind(address).await.map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => ListenError::InUse(address),
        _ => ListenError::Io { address, source },
    })
}

/// The listener while it serves; it stops when dropped.
pub struct CallbackListener {
    address: SocketAddr,
    paths: Vec<String>,
    skipped: Vec<String>,
    server: tokio::task::JoinHandle<()>,
}

impl CallbackListener {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The paths it serves, `/<provider>` each.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The catalog entries whose callbacks it does not receive, each with why (a block or a secret
    /// that does not read): their releases poll.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalBaton {
    /// Serves the providers' callbacks on `listener` (see [`bind_callbacks`]) until the returned
    /// listener is dropped: a receiver for each provider whose blocks in the catalog name the
    /// secret of its events. An entry whose block or secret does not read is left out and
    /// reported in [`CallbackListener::skipped`]: its releases poll.
    pub async fn serve_callbacks(&self, listener: TcpListener) -> Result<CallbackListener, LocalError> {
        let address = listener
            .local_addr()
            .map_err(|err| baton_domain::ports::ProviderError::unavailable("the callback listener has no local address").caused_by(err))?;
        let (receivers, skipped) = self.receivers().await;
        let paths = receivers.paths();
        let door = Arc::new(Door { receivers, baton: self.clone() });
        let server = tokio::spawn(serve(listener, door));
        Ok(CallbackListener { address, paths, skipped, server })
    }

    async fn receivers(&self) -> (Receivers, Vec<String>) {
        let Some(sources) = &self.callbacks_from else { return (Receivers::default(), Vec::new()) };
        let (receivers, problems) = sources.providers.receivers(&sources.entries).await;
        (Receivers(receivers), problems.iter().map(ToString::to_string).collect())
    }
}

struct Door {
    receivers: Receivers,
    baton: LocalBaton,
}

impl Door {
    async fn answer(&self, request: Request<Incoming>) -> CallbackAnswer {
        if request.method() != Method::POST {
            return CallbackAnswer::message(405, format!("{} {}: provider callbacks are POSTed", request.method(), request.uri().path()));
        }
        let path = request.uri().path().to_owned();
        let headers = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_ascii_lowercase(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = match tokio::time::timeout(READ_WITHIN, Limited::new(request.into_body(), MAX_CALLBACK_BYTES).collect()).await {
            Ok(Ok(body)) => body.to_bytes().to_vec(),
            Ok(Err(_)) => return CallbackAnswer::message(413, format!("the body is over the limit of {MAX_CALLBACK_BYTES} bytes")),
            Err(_) => return CallbackAnswer::message(408, format!("the body did not arrive within {}s", READ_WITHIN.as_secs())),
        };
        let inbound = InboundRequest { path, headers, body };
        let ports = self.baton.ports();
        let tokens = ExecutorTokens(self.baton.executor().clone());
        waits::answer_callback(&self.receivers, &inbound, ports.store.as_ref(), &tokens, ports.clock.now()).await
    }
}

async fn serve(listener: TcpListener, door: Arc<Door>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors, say: the next accept may succeed.
                tracing::warn!(error = %err, "the callback listener could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let door = door.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let door = door.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let answer = door.answer(request).await;
                    tracing::info!(%path, status = answer.status, answer = %answer.body, "provider callback answered");
                    Ok::<_, std::convert::Infallible>(reply(answer))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(READ_WITHIN)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = connection.await;
        });
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
    }
}

fn reply(answer: CallbackAnswer) -> Response<Full<Bytes>> {
    Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(answer.body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"{}"))))
}
