//! Ctrl-C typed on a terminal: `baton release` runs on a pseudo-terminal as a shell runs it (a
//! session of its own whose foreground process group it is), and the test types ^C there, which
//! the terminal's line discipline turns into SIGINT for that group, as it does for a person.

use crate::durable::{
    TARGETS, baton, deployed, events_of, json, newest, next_release_ships_only, start_release_of, wait_for_the_canary_to_bake,
};
use crate::support::{baton_command, examples};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `baton` process on a terminal of its own, and what it wrote there.
struct OnTerminal {
    child: Child,
    terminal: File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl OnTerminal {
    fn start(state: &Path, args: &[&str]) -> OnTerminal {
        OnTerminal::start_on(state, &examples(), args)
    }

    // openpty, and the session and controlling terminal set between fork and exec: libc calls.
    #[allow(unsafe_code)]
    fn start_on(state: &Path, catalog: &Path, args: &[&str]) -> OnTerminal {
        let (mut controller, mut device) = (0, 0);
        // SAFETY: openpty writes the two descriptors it opens; the name and settings are unused.
        let opened = unsafe { libc::openpty(&mut controller, &mut device, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened and are owned here alone.
        let (terminal, device) = unsafe { (File::from_raw_fd(controller), OwnedFd::from_raw_fd(device)) };
        let stdio = || Stdio::from(device.try_clone().expect("dup the terminal"));
        let mut command = baton_command(state, catalog, args);
        command.env("USER", "ann").env("TERM", "xterm").stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: only async-signal-safe calls between fork and exec. A session of its own makes
        // the terminal its controlling one, and its process group the terminal's foreground.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start baton on the terminal");
        // The child holds the device now: once it exits, reads of the terminal end (EIO).
        drop(device);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = terminal.try_clone().expect("dup the terminal");
        let written = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                written.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
        OnTerminal { child, terminal, screen }
    }

    /// Types Ctrl-C.
    fn ctrl_c(&mut self) {
        self.terminal.write_all(&[0x03]).expect("type ^C");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader drains what is left on the terminal.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("baton did not exit within {within:?}; the screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn release_of(state: &Path, sha: &str) -> Option<Value> {
    let history = json(&baton(state, &["history", "hello-web", "--json"]));
    history.as_array()?.iter().find(|r| r["sha"] == sha).cloned()
}

fn lock_is_free(state: &Path) -> bool {
    let unlock = crate::durable::baton_with_catalog(state, &["unlock", "hello-web", "--reason", "check", "--json"]);
    json(&unlock)["freed"] == false
}

#[test]
fn ctrl_c_on_a_running_release_rolls_it_back_frees_the_lock_and_the_next_release_ships_only_its_commit() {
    let state = tempfile::tempdir().unwrap();
    let mut release = OnTerminal::start(state.path(), &["release", "hello-web", "--sha", "aaa1111"]);
    wait_for_the_canary_to_bake(state.path());
    let id = newest(state.path())["id"].as_str().unwrap().to_owned();
    release.ctrl_c();
    let status = release.wait(Duration::from_secs(60));
    let screen = release.screen();
    assert_eq!(status.code(), Some(130), "the screen:\n{screen}");
    assert!(screen.contains("SIGINT: stopping the release: rolling back what it touched"), "{screen}");
    assert!(screen.contains(&format!("{id} hello-web → production: cancelled")), "the summary says how it ended:\n{screen}");

    let record = release_of(state.path(), "aaa1111").expect("the stopped release");
    assert_eq!((&record["status"], &record["waves"][0]["status"]), (&json!("cancelled"), &json!("rolled-back")), "{record}");
    assert_eq!(events_of(state.path(), &id, "cancelled")[0], "ann cancelled the release: SIGINT on `baton release`");
    assert_eq!(deployed(state.path()), vec![None; TARGETS.len()], "the canary is rolled back");
    assert!(lock_is_free(state.path()), "the stopped release freed its lock");
    next_release_ships_only(state.path(), "bbb2222", &[]);
}

#[test]
fn ctrl_c_on_a_queued_release_cancels_it_at_once_and_leaves_the_running_one_alone() {
    let state = tempfile::tempdir().unwrap();
    let running = start_release_of(state.path(), "aaa1111");
    wait_for_the_canary_to_bake(state.path());
    let mut queued = OnTerminal::start(state.path(), &["release", "hello-web", "--sha", "bbb2222"]);
    let started = Instant::now();
    while release_of(state.path(), "bbb2222").is_none_or(|r| r["status"] != "queued") {
        assert!(started.elapsed() < Duration::from_secs(30), "the second release never queued:\n{}", queued.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    queued.ctrl_c();
    let status = queued.wait(Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "the screen:\n{}", queued.screen());
    let cancelled = release_of(state.path(), "bbb2222").unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(cancelled["waves"].as_array().unwrap().iter().all(|w| w["status"] == "pending"), "it touched nothing: {cancelled}");
    let first = release_of(state.path(), "aaa1111").unwrap();
    assert_eq!(first["status"], "running", "the running release goes on: {first}");

    let first = running.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(deployed(state.path()), vec![Some("hello-web@aaa1111".to_owned()); TARGETS.len()]);
    assert!(lock_is_free(state.path()), "no lock is left held");
    next_release_ships_only(state.path(), "ccc3333", &[]);
}

/// Waits until the screen shows `text`.
fn wait_for_screen(terminal: &OnTerminal, text: &str, within: Duration) {
    let started = Instant::now();
    while !terminal.screen().contains(text) {
        assert!(started.elapsed() < within, "the screen never showed {text:?}:\n{}", terminal.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_live_view_counts_each_bake_down_and_names_the_team_and_runbook() {
    let state = tempfile::tempdir().unwrap();
    let mut release = OnTerminal::start(state.path(), &["release", "hello-web", "--sha", "aaa1111"]);
    // hello-web's canary bakes 5 s: its line counts down what is left of it.
    wait_for_screen(&release, "baking (1 target), 4s left of 5s", Duration::from_secs(60));
    wait_for_screen(&release, "baking (1 target), 2s left of 5s", Duration::from_secs(10));
    let screen = release.screen();
    assert!(screen.contains("running · deploy "), "the stage and its elapsed time:\n{screen}");
    assert!(screen.contains("team      web-platform (on-call web-platform-primary)"), "{screen}");
    assert!(screen.contains("runbook   https://example.com/runbooks/hello-web"), "{screen}");
    release.ctrl_c();
    assert_eq!(release.wait(Duration::from_secs(60)).code(), Some(130), "{}", release.screen());
}

#[test]
fn a_rollback_failure_ends_its_screen_naming_the_target_and_warnings_show_in_the_view() {
    let state = tempfile::tempdir().unwrap();
    let catalog = tempfile::tempdir().unwrap();
    // Its Slack webhook is not set: the notification is not delivered, and the view says so.
    let notify = "    notify:\n      slack:\n        channel: \"#releases\"\n        webhook: env:STUCK_API_SLACK_WEBHOOK_UNSET\n";
    std::fs::write(catalog.path().join("stuck-api.yaml"), format!("{}{notify}", crate::release::ROLLBACK_FAILS)).unwrap();
    let mut release = OnTerminal::start_on(state.path(), catalog.path(), &["release", "stuck-api", "--no-wait"]);
    let status = release.wait(Duration::from_secs(60));
    let screen = release.screen();
    assert_eq!(status.code(), Some(3), "{screen}");
    assert!(screen.contains("notification not delivered") && screen.contains("STUCK_API_SLACK_WEBHOOK_UNSET"), "{screen}");
    assert!(screen.contains("stuck-api → production: rollback-failed"), "{screen}");
    assert!(screen.contains("  left      canary-b (wave canary) on stuck-api-"), "the target left on the new artifact:\n{screen}");
    assert!(screen.contains("  next      "), "{screen}");

    // Redirected, the same screen has no terminal codes, the warning's included.
    let piped = baton_command(state.path(), catalog.path(), &["release", "stuck-api", "--no-wait", "--force"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&piped.stdout), String::from_utf8_lossy(&piped.stderr));
    assert!(stderr.contains("notification not delivered"), "{stderr}");
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "no ANSI codes in redirected output:\n{stdout}\n{stderr}");
}
