//! `--events-listen`: a local release receives its providers' callbacks on loopback (the
//! provider-events function's door, on this machine) instead of polling them.

use crate::failure::Failure;
use baton_local_runner::{CallbackListener, LocalBaton, bind_callbacks};
use clap::Args;
use std::net::SocketAddr;
use tokio::net::TcpListener;

#[derive(Args, Clone)]
pub struct EventsArgs {
    /// Listen on this loopback address for the providers' callbacks (`127.0.0.1:8787`; port 0
    /// picks a free one): the waits of an entry with `events: {wait: true}` end when the callback
    /// arrives. Without it nothing could call back, so every wait polls.
    #[arg(long, env = "BATON_EVENTS_LISTEN", value_name = "ADDRESS")]
    pub events_listen: Option<SocketAddr>,
    /// The URL the providers are told to call back (a tunnel's public URL to the listener,
    /// scheme and host only: `https://abc.trycloudflare.com`) [default: http://<--events-listen>].
    #[arg(long, env = "BATON_EVENTS_URL", value_name = "URL", requires = "events_listen")]
    pub events_url: Option<String>,
    /// Let --events-listen bind an address other than loopback (every callback is still checked
    /// against its provider's signature).
    #[arg(long, requires = "events_listen")]
    pub events_listen_any_interface: bool,
}

/// The bound listener and the URL the providers are told to call.
pub struct Bound {
    listener: TcpListener,
    pub url: String,
}

impl EventsArgs {
    /// Binds the listener, when asked: before anything runs, so a port in use stops the command
    /// at once.
    pub async fn bind(&self) -> Result<Option<Bound>, Failure> {
        let Some(address) = self.events_listen else { return Ok(None) };
        let given = self.events_url.as_deref().map(origin).transpose().map_err(|why| {
            Failure::usage(format!("--events-url {}: {why}", self.events_url.as_deref().unwrap_or_default().escape_debug()))
        })?;
        let listener = bind_callbacks(address, self.events_listen_any_interface).await.map_err(|err| {
            let failure = Failure::usage(format!("--events-listen {address}")).caused_by(&err);
            match err {
                baton_local_runner::ListenError::NotLoopback(_) => {
                    failure.hint("pass --events-listen-any-interface to listen there anyway")
                }
                _ => failure,
            }
        })?;
        let bound = listener.local_addr().unwrap_or(address);
        Ok(Some(Bound { listener, url: given.unwrap_or_else(|| format!("http://{bound}")) }))
    }
}

/// Serves the callbacks on `bound` for as long as the returned listener lives, and says where.
pub async fn serve(baton: &LocalBaton, bound: Option<Bound>) -> Result<Option<CallbackListener>, Failure> {
    let Some(Bound { listener, url }) = bound else { return Ok(None) };
    let served = baton.serve_callbacks(listener).await.map_err(|err| Failure::failed("cannot serve provider callbacks").caused_by(&err))?;
    let paths = if served.paths().is_empty() {
        "no path: no catalog entry names the secret of its provider's events, so every wait polls".to_owned()
    } else {
        served.paths().join(", ")
    };
    errln!("baton: listening for provider callbacks on http://{} ({paths}); providers call back to {url}", served.address());
    for skipped in served.skipped() {
        errln!("baton: not receiving callbacks for {skipped}; its releases poll");
    }
    Ok(Some(served))
}

/// `url` as the events URL: http(s), scheme and host only (the listener serves `/<provider>` at
/// its root, and a callback's signature covers its path).
fn origin(url: &str) -> Result<String, &'static str> {
    let url = url.trim().trim_end_matches('/');
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or("expected an http:// or https:// URL")?;
    if host.is_empty() || host.contains(['/', '?', '#', ' ', '@']) {
        return Err("expected a scheme and host only (no path, query or credentials): providers call <URL>/<provider>/...");
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn an_events_url_is_an_origin() {
        assert_eq!(origin("https://abc.trycloudflare.com/"), Ok("https://abc.trycloudflare.com".to_owned()));
        assert_eq!(origin("http://127.0.0.1:8787"), Ok("http://127.0.0.1:8787".to_owned()));
        for refused in ["abc.example.com", "ftp://x", "https://", "https://x/baton", "https://x?a=1", "https://u:p@x"] {
            assert!(origin(refused).is_err(), "{refused}");
        }
    }
}
