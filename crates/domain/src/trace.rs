//! A release's trace context: its OpenTelemetry trace and span ids derive from the release id,
//! so any task names a span before the trace is sent (the `otlp` exporter sends it once the
//! release ends), and every build and deploy is handed its span as a W3C `traceparent`, so what
//! a CI system or a deploy tool traces joins the release's trace.

use crate::release::ReleaseId;

/// The first `bytes` bytes of a SHA-256 of `parts`, as lowercase hex.
fn digest_hex(parts: &[&str], bytes: usize) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(&hasher.finalize()[..bytes])
}

/// The release's trace id: 16 bytes of a hash of its id, as 32 lowercase hex digits.
pub fn trace_id(release: &ReleaseId) -> String {
    digest_hex(&["baton-trace", &release.0], 16)
}

/// The id of the span at `path` ("release", "build", "wave/canary", "wave/canary/deploy/web-1"):
/// 8 bytes of a hash of the release id and the path, as 16 lowercase hex digits.
pub fn span_id(release: &ReleaseId, path: &str) -> String {
    digest_hex(&["baton-span", &release.0, path], 8)
}

/// The W3C `traceparent` naming the span at `path` of the release's trace, sampled.
pub fn traceparent(release: &ReleaseId, path: &str) -> String {
    format!("00-{}-{}-01", trace_id(release), span_id(release, path))
}

/// The path of the build's span.
pub const BUILD_SPAN: &str = "build";

/// The variable a build or deploy finds its span in, as OpenTelemetry's environment carrier
/// names it (what CI tracing agents read).
pub const TRACEPARENT: &str = "TRACEPARENT";

/// The `traceparent` of the release's build span: what every build provider hands its run.
pub fn build_traceparent(release: &ReleaseId) -> String {
    traceparent(release, BUILD_SPAN)
}

/// The `traceparent` of one target's deploy (or its putting back, on a rollback).
pub fn deploy_traceparent(request: &crate::ports::DeployRequest) -> String {
    traceparent(&request.release_id, &deploy_span(&request.wave, &request.target, request.rollback))
}

/// The path of the span of `target`'s deploy in `wave`, or of putting it back on a rollback.
pub fn deploy_span(wave: &str, target: &str, rollback: bool) -> String {
    if rollback { format!("rollback/{wave}/{target}") } else { format!("wave/{wave}/deploy/{target}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_w3c_shaped_and_distinct() {
        let release = ReleaseId("rel-web-20260101120000-0123abcd".into());
        let parent = traceparent(&release, "build");
        assert_eq!(parent, traceparent(&release, "build"));
        let parts: Vec<&str> = parent.split('-').collect();
        assert_eq!(parts.iter().map(|part| part.len()).collect::<Vec<_>>(), [2, 32, 16, 2]);
        assert!(parent.chars().all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)), "{parent}");
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_ne!(span_id(&release, "build"), span_id(&release, "release"));
        assert_ne!(trace_id(&release), trace_id(&ReleaseId("rel-web-20260101120000-0123abce".into())));
    }
}
