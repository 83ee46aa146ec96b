//! One logging setup for every Baton binary: the Lambdas, the webhook and the CLI.
//!
//! - `BATON_LOG` filters (tracing's `EnvFilter` syntax: `info`, `baton_aws=debug,warn`); on
//!   Lambda, `AWS_LAMBDA_LOG_LEVEL` (the console's log-level setting) applies when it is unset.
//! - Lines are JSON on Lambda (where CloudWatch Logs Insights reads them), with `--log-json`, or
//!   with `BATON_LOG_FORMAT=json`; plain text otherwise. Always on stderr.
//! - Each task runs inside [`task_span`], so every line it logs carries the function and the
//!   release id (`span.release_id` in JSON).
//! - Every line is scrubbed of the secrets Baton resolved ([`baton_domain::redact`]) on its way
//!   out, whichever library or command output wrote it.

use std::io::Write;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

pub const FILTER_VAR: &str = "BATON_LOG";
pub const FORMAT_VAR: &str = "BATON_LOG_FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    /// JSON when asked for (`json_flag`, `BATON_LOG_FORMAT=json`) or when running on Lambda.
    pub fn from_env(json_flag: bool) -> Format {
        let asked = std::env::var(FORMAT_VAR).is_ok_and(|f| f.eq_ignore_ascii_case("json"));
        let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
        if json_flag || asked || on_lambda { Format::Json } else { Format::Text }
    }
}

/// The filter from `BATON_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env(FILTER_VAR)
        .or_else(|_| EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| EnvFilter::new(default))
}

/// Installs the process's subscriber. `default` is the filter when no variable sets one
/// (`warn` for the CLI, whose output is its own; `info` for the functions).
pub fn init(format: Format, default: &str) {
    init_to(format, default, std::io::IsTerminal::is_terminal(&std::io::stderr()), std::io::stderr);
}

/// As [`init`], with lines written to `writer`'s writers (the CLI's go above its live view);
/// `ansi`: colour the text format (only when it reaches a terminal).
pub fn init_to<W: Write + 'static>(format: Format, default: &str, ansi: bool, writer: impl Fn() -> W + Send + Sync + 'static) {
    // Without log_internal_errors(false), a write to a closed stderr (`baton ... 2>&1 | head`)
    // makes tracing-subscriber eprintln!, which panics whatever task logged.
    let scrubbed = move || Scrubbed(writer());
    // A second init (tests, or a binary that calls it twice) keeps the first subscriber.
    let _ = match format {
        Format::Json => json_lines(scrubbed, filter(default)).try_init(),
        Format::Text => tracing_subscriber::fmt()
            .with_env_filter(filter(default))
            .with_writer(scrubbed)
            .with_ansi(ansi)
            .log_internal_errors(false)
            .try_init(),
    };
}

/// The JSON lines the functions write on Lambda (one object per event, its fields at the top
/// level, the task's span under `span`), to `writer`: what the stack's metric filters read, and
/// what tests capture to check them.
pub fn json_lines<W>(
    writer: W,
    filter: EnvFilter,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    EnvFilter,
    W,
>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false)
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
}

/// A writer that masks secrets in what it is given. The formatter hands it one whole event at a
/// time, so a secret is never split across two writes.
pub struct Scrubbed<W>(pub W);

impl<W: Write> Write for Scrubbed<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&baton_domain::redact::scrub_bytes(bytes))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The span one task invocation runs in: `function` and, once the release exists, its id.
pub fn task_span(function: &str, release_id: Option<&str>) -> tracing::Span {
    tracing::info_span!("task", function, release_id)
}

/// A writer that keeps what it is given (clones share it): tests read the lines a function
/// writes through it, `json_lines(captured.writer(), filter)`.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// A writer factory for a subscriber: each write lands in this capture.
    pub fn writer(&self) -> impl Fn() -> Captured + Send + Sync + 'static {
        let captured = self.clone();
        move || captured.clone()
    }

    /// What was written so far, line by line.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_of_a_task_carry_the_release_id() {
        let captured = Captured::default();
        let writer = captured.clone();
        // The same JSON layout `init` installs, writing to a buffer.
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let _task = task_span("notify", Some("rel-web-1")).entered();
            tracing::info!(channel = "#deploys", "message sent");
            tracing::warn!("notification not delivered");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert_eq!(json.pointer("/span/release_id").and_then(|v| v.as_str()), Some("rel-web-1"), "{line}");
            assert_eq!(json.pointer("/span/function").and_then(|v| v.as_str()), Some("notify"), "{line}");
        }
    }

    #[test]
    fn secrets_never_reach_a_log_line() {
        baton_domain::redact::remember("xoxb-logged-by-mistake");
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || Scrubbed(writer.clone())).json().finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(token = "xoxb-logged-by-mistake", "the build printed xoxb-logged-by-mistake");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("xoxb-logged-by-mistake") && text.matches("***").count() == 2, "{text}");
    }
}
