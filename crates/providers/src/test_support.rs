//! Fixtures shared by the unit tests.

use crate::command::catalog::{CommandBuild, CommandDeploy, CommandRun};
use baton_domain::catalog::{HealthSpec, ProviderBlock, ServiceEntry};
use baton_domain::ports::HealthRequest;
use baton_domain::release::{Artifact, ReleaseId};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::{Interest, Subscriber};
use tracing::{Dispatch, Event, Metadata, span};

/// A catalog entry for service `web` whose file lives in `dir`: the handlers' fake entry, its
/// blocks commands that succeed, its one wave `canary` on `host-1` without a bake, no notifier.
pub fn entry_in(dir: &Path) -> ServiceEntry {
    let command = vec!["true".to_string()];
    let mut entry = baton_contract::fakes::entry();
    entry.team = Some("payments".into());
    entry.source = dir.join("service.datadog.yaml").display().to_string();
    let delivery = &mut entry.delivery;
    delivery.build = ProviderBlock::of("command", &CommandBuild { run: CommandRun::new(command.clone()), artifact_file: None });
    delivery.deploy.target = ProviderBlock::of("command", &CommandDeploy { run: CommandRun::new(command.clone()), rollback_command: None });
    delivery.deploy.waves[0].targets = vec!["host-1".into()];
    delivery.deploy.waves[0].bake = Default::default();
    delivery.health = HealthSpec::single(ProviderBlock::of("command", &CommandRun::new(command)));
    delivery.notify = Vec::new();
    entry
}

/// A health request for `web`'s wave `canary` on two hosts, artifact `web:2`.
pub fn health_request() -> HealthRequest {
    HealthRequest {
        service: "web".into(),
        environment: "production".into(),
        release_id: release_id(),
        wave: "canary".into(),
        targets: vec!["host-1".into(), "host-2".into()],
        artifact: Artifact { reference: "web:2".into(), sha: "abc123".into(), branch: "main".into(), build_url: None },
    }
}

pub fn release_id() -> ReleaseId {
    ReleaseId("rel-web-20260101120000-0123abcd".into())
}

/// Writes `body` to `dir/name` as a shell script and returns the argv that runs it.
pub fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("set -u\n{body}\n")).unwrap();
    vec!["sh".into(), path.display().to_string()]
}

/// Captures everything logged on this thread (all levels) while it lives. The tests run on
/// tokio's current-thread runtime, so the code under test logs on this thread too.
pub struct LogCapture {
    buffer: Buffer,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        LazyLock::force(&ANCHOR);
        let buffer = Buffer::default();
        let subscriber =
            tracing_subscriber::fmt().with_writer(buffer.clone()).with_max_level(tracing::Level::TRACE).with_ansi(false).finish();
        LogCapture { _guard: tracing::subscriber::set_default(subscriber), buffer }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.0.lock().unwrap()).into_owned()
    }
}

/// tracing caches each callsite's interest for the whole process, asking the subscriber of the
/// thread that first reaches it while at most one dispatcher is registered: a sibling test with no
/// subscriber would cache `never`, and a capture would then miss that line's events (the flaky
/// `output_is_logged_line_by_line...`). This dispatcher lives for the process and answers
/// "sometimes", so every callsite asks the current thread's subscriber at each event.
static ANCHOR: LazyLock<Dispatch> = LazyLock::new(|| {
    let anchor = Dispatch::new(AskEveryTime);
    tracing::callsite::rebuild_interest_cache();
    anchor
});

struct AskEveryTime;

impl Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// A resolver that knows one secret.
pub struct FixedSecrets {
    reference: baton_domain::catalog::SecretRef,
    value: String,
}

impl FixedSecrets {
    pub fn one(reference: baton_domain::catalog::SecretRef, value: &str) -> FixedSecrets {
        FixedSecrets { reference, value: value.into() }
    }
}

#[async_trait::async_trait]
impl baton_domain::ports::SecretResolver for FixedSecrets {
    async fn resolve(&self, secret: &baton_domain::catalog::SecretRef) -> Result<String, baton_domain::ports::ProviderError> {
        if *secret == self.reference {
            Ok(self.value.clone())
        } else {
            Err(baton_domain::ports::ProviderError::rejected(format!("unknown secret {secret}")))
        }
    }
}
