//! A catalog of one service whose build, deploy and health commands are small shell
//! scripts steered through files in a control directory, so each test decides what fails.

use baton_asl::{Clock, ExecutionOutcome, ExecutionStatus};
use baton_domain::release::{EventKind, LockKey, Release, ReleaseStatus, WaveStatus};
use baton_local_runner::{LocalBaton, LocalConfig};
use chrono::{DateTime, TimeDelta, Utc};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SERVICE: &str = "checkout";
pub const ENVIRONMENT: &str = "production";
pub const WAVES: [(&str, &[&str]); 3] =
    [("canary", &["box-1"]), ("one-region", &["use1-a", "use1-b"]), ("everywhere", &["usw2-a", "euw1-a", "aps1-a"])];

const BUILD: &str = r#"set -eu
while [ -e "$CONTROL/hold-build" ]; do sleep 0.05; done
if [ -e "$CONTROL/fail-build" ]; then echo "compile error in main.go" >&2; exit 3; fi
echo "building $BATON_SERVICE $BATON_RELEASE_ID"
echo "$BATON_SERVICE-$BATON_RELEASE_ID.tar.gz""#;

const DEPLOY: &str = r#"set -eu
if [ "$BATON_ROLLBACK" = true ] && [ -e "$CONTROL/fail-rollback-$BATON_TARGET" ]; then echo "access denied on $BATON_TARGET" >&2; exit 4; fi
dir="$BATON_WORKSPACE/targets/$BATON_TARGET"
mkdir -p "$dir"
if [ -z "${BATON_ARTIFACT:-}" ]; then rm -f "$dir/current"; exit 0; fi
printf '%s' "$BATON_ARTIFACT" > "$dir/current""#;

const HEALTH: &str = r#"set -eu
echo sample >> "$BATON_WORKSPACE/samples-$BATON_RELEASE_ID-$BATON_WAVE"
sample=$(wc -l < "$BATON_WORKSPACE/samples-$BATON_RELEASE_ID-$BATON_WAVE")
if [ -e "$CONTROL/unhealthy-$BATON_WAVE" ]; then echo "error rate 12% on $BATON_TARGETS" >&2; exit 1; fi
if [ -e "$CONTROL/unhealthy-$BATON_WAVE-after" ] && [ "$sample" -gt "$(cat "$CONTROL/unhealthy-$BATON_WAVE-after")" ]; then
  echo "error rate 12% on $BATON_TARGETS at sample $sample" >&2; exit 1
fi
echo "healthy: $BATON_TARGETS""#;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    waves: Vec<(String, Vec<String>)>,
    /// Waves' `approval` blocks (flow-style YAML), by wave name.
    approvals: Vec<(String, String)>,
}

impl Fixture {
    /// The service with [`WAVES`].
    pub fn new() -> Fixture {
        let waves: Vec<(String, Vec<String>)> =
            WAVES.iter().map(|(name, targets)| (name.to_string(), targets.iter().map(|t| t.to_string()).collect())).collect();
        Fixture::with_waves(&waves)
    }

    /// The service with these waves (name, targets).
    pub fn with_waves(waves: &[(String, Vec<String>)]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixture = Fixture { dir, waves: waves.to_vec(), approvals: Vec::new() };
        std::fs::create_dir_all(fixture.control()).unwrap();
        std::fs::create_dir_all(fixture.catalog()).unwrap();
        fixture.write_catalog(SERVICE, "");
        fixture
    }

    /// Gives `wave` the approval block `approval` (flow-style YAML, `{required: true, ...}`) and
    /// writes the catalog again.
    pub fn require_approval(&mut self, wave: &str, approval: &str) {
        self.approvals.push((wave.to_owned(), approval.to_owned()));
        self.write_catalog(SERVICE, "");
    }

    pub fn catalog(&self) -> PathBuf {
        self.dir.path().join("catalog")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn control(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    /// Writes a v2.2 definition of `service`; `extra` lands inside its `extensions.baton` block.
    pub fn write_catalog(&self, service: &str, extra: &str) {
        let command = serde_json::to_string(&["sh", "-c", BUILD]).unwrap();
        let control = self.control();
        let build = format!("      provider: command\n      command: {command}\n      env: {{CONTROL: \"{}\"}}\n", control.display());
        self.write_catalog_with_build(service, extra, &build);
    }

    /// As [`Fixture::write_catalog`], with `build` (the lines under `build:`) as its build block.
    pub fn write_catalog_with_build(&self, service: &str, extra: &str, build: &str) {
        let control = self.control();
        let deploy = format!(
            "      provider: command\n      command: {}\n      env: {{CONTROL: \"{}\"}}\n",
            serde_json::to_string(&["sh", "-c", DEPLOY]).unwrap(),
            control.display()
        );
        self.write_catalog_with_blocks(service, extra, build, &deploy);
    }

    /// As [`Fixture::write_catalog_with_build`], with `deploy` (the lines under `deploy:` but its
    /// waves) as its deploy block.
    pub fn write_catalog_with_blocks(&self, service: &str, extra: &str, build: &str, deploy: &str) {
        let control = self.control();
        let waves: String = self
            .waves
            .iter()
            .map(|(name, targets)| {
                let approval =
                    self.approvals.iter().find(|(wave, _)| wave == name).map(|(_, block)| format!("          approval: {block}\n"));
                format!(
                    "        - name: {name}\n          targets: [{}]\n          bake: 10m\n{}",
                    targets.join(", "),
                    approval.unwrap_or_default()
                )
            })
            .collect();
        let command = |script: &str| serde_json::to_string(&["sh", "-c", script]).unwrap();
        let yaml = format!(
            "schema-version: v2.2\ndd-service: {service}\nteam: payments\nlinks:\n  - {{name: Source, type: repo, url: \"https://github.com/acme/{service}\"}}\nextensions:\n  baton:\n    environment: {ENVIRONMENT}\n    release-branch: main\n{extra}    build:\n{build}    deploy:\n{deploy}      waves:\n{waves}    health:\n      interval: 30s\n      gates:\n        - provider: command\n          command: {health}\n          env: {{CONTROL: \"{control}\"}}\n",
            health = command(HEALTH),
            control = control.display(),
        );
        std::fs::write(self.catalog().join(format!("{service}.yaml")), yaml).unwrap();
    }

    /// Writes a control file holding `text` (`unhealthy-<wave>-after` holds a sample count).
    pub fn set_to(&self, flag: &str, text: &str) {
        std::fs::write(self.control().join(flag), text).unwrap();
    }

    pub fn set(&self, flag: &str) {
        std::fs::write(self.control().join(flag), "").unwrap();
    }

    pub fn clear(&self, flag: &str) {
        std::fs::remove_file(self.control().join(flag)).unwrap();
    }

    /// The local Baton on the virtual clock: bakes and backoffs take no wall time.
    pub fn baton(&self) -> LocalBaton {
        self.baton_with(Clock::Virtual)
    }

    pub fn baton_with(&self, clock: Clock) -> LocalBaton {
        LocalBaton::open(self.config(clock)).expect("local baton")
    }

    /// The local Baton with the executor and the handlers both on time `factor` times faster
    /// than the wall clock: what handlers compare with timestamps (a waiter's heartbeat, a
    /// lock's lease) moves as fast as the definition's waits.
    pub fn baton_scaled(&self, factor: u32) -> LocalBaton {
        let mut ports = self.baton_with(Clock::Scaled(factor)).ports().clone();
        ports.clock = Arc::new(ScaledClock::new(factor));
        LocalBaton::new(ports, Clock::Scaled(factor)).expect("local baton")
    }

    pub fn config(&self, clock: Clock) -> LocalConfig {
        LocalConfig {
            catalog: self.catalog(),
            state_dir: self.state_dir(),
            console: None,
            clock,
            slack_api_base: None,
            skip_bakes: false,
            events_url: None,
            poll_only: false,
        }
    }

    /// What a target runs now, if anything.
    pub fn deployed(&self, service: &str, target: &str) -> Option<String> {
        std::fs::read_to_string(self.state_dir().join("workspace").join(service).join("targets").join(target).join("current")).ok()
    }
}

/// Handler time running `factor` times faster than the wall clock from the moment it is made,
/// the counterpart of the executor's `Clock::Scaled`.
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: Instant,
    factor: u32,
}

impl ScaledClock {
    pub fn new(factor: u32) -> ScaledClock {
        ScaledClock { origin: Utc::now(), started: Instant::now(), factor }
    }
}

impl baton_domain::ports::Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + TimeDelta::from_std(self.started.elapsed() * self.factor).expect("a test's scaled time fits a TimeDelta")
    }
}

/// Handler time stopped at one instant.
pub struct FixedClock(pub DateTime<Utc>);

impl baton_domain::ports::Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

impl Default for Fixture {
    fn default() -> Fixture {
        Fixture::new()
    }
}

pub fn cli_input(trigger_id: &str) -> serde_json::Value {
    serde_json::json!({"service": SERVICE, "sha": "4f2a9c1e", "trigger": {"kind": "cli", "id": trigger_id, "actor": "test"}})
}

/// Every release the store holds for the test service, newest first.
pub async fn releases(baton: &LocalBaton) -> Vec<Release> {
    baton.ports().store.list_releases(SERVICE, None, 100).await.expect("list releases")
}

pub async fn release_of(baton: &LocalBaton, execution: &str) -> Release {
    releases(baton)
        .await
        .into_iter()
        .find(|r| r.execution.as_deref() == Some(execution))
        .unwrap_or_else(|| panic!("no release recorded for {execution}"))
}

/// Waits (wall time) until the execution's release reaches `status`.
pub async fn wait_for_status(baton: &LocalBaton, execution: &str, status: ReleaseStatus) -> Release {
    for _ in 0..600 {
        if let Some(release) = releases(baton).await.into_iter().find(|r| r.execution.as_deref() == Some(execution))
            && release.status == status
        {
            return release;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("release of {execution} never reached {status}; releases: {:#?}", releases(baton).await);
}

/// The checks every finished release must pass: a complete, consistent record and no lock held.
pub async fn assert_consistent(baton: &LocalBaton, release: &Release) {
    assert!(release.status.is_terminal(), "{} is still {}", release.id, release.status);
    assert!(release.finished_at.is_some(), "{} has no finish time", release.id);
    assert_eq!(
        release.failure.is_some(),
        matches!(
            release.status,
            ReleaseStatus::Failed | ReleaseStatus::RolledBack | ReleaseStatus::RollbackFailed | ReleaseStatus::Cancelled
        ),
        "failure recorded iff the release failed or was stopped (who stopped it and why): {release:#?}"
    );
    if release.status == ReleaseStatus::Succeeded {
        assert!(release.artifact.is_some(), "a succeeded release keeps its artifact");
        assert!(release.waves.iter().all(|w| w.status == WaveStatus::Healthy), "{:#?}", release.waves);
    }
    let events = baton.ports().store.events(&release.id).await.unwrap();
    assert_eq!(events.first().map(|e| e.kind), Some(EventKind::Queued), "the timeline starts when the signal is accepted");
    let last = events.last().unwrap();
    assert_eq!(Some(last.kind), EventKind::ending(release.status), "the timeline ends with the outcome: {events:#?}");
    let holder = baton.ports().store.lock_holder(&LockKey::new(&release.service, &release.environment), chrono::Utc::now()).await.unwrap();
    assert_eq!(holder, None, "no lock may be left held after {}", release.id);
}

pub fn assert_status(outcome: &ExecutionOutcome, status: ExecutionStatus) {
    assert_eq!(outcome.status, status, "execution ended {:?}: {:?} {:?}", outcome.status, outcome.error, outcome.cause);
}

/// An ordinary end that is not a success (a failed build, a clean rollback, a cancel): the
/// execution succeeds, so the failed-executions alarm does not page, and its output names the
/// outcome (`outcome.status`) and why (`outcome.error.Error`).
pub fn assert_outcome(outcome: &ExecutionOutcome, status: &str, error: &str) {
    assert_status(outcome, ExecutionStatus::Succeeded);
    let named = |pointer: &str| outcome.output.as_ref().and_then(|output| output.pointer(pointer)).and_then(|value| value.as_str());
    assert_eq!((named("/outcome/status"), named("/outcome/error/Error")), (Some(status), Some(error)), "{:?}", outcome.output);
}

pub fn path_string(path: &Path) -> String {
    path.display().to_string()
}
