//! Following a local run to its end: the live view, a person's stop (SIGINT, SIGTERM, `baton
//! cancel`), and the report and exit code of the release it carried. `release`, `resume` and
//! `cancel` all end here.

use crate::exit;
use crate::failure::{Failure, Outcome};
use crate::signals::{self, Interrupts};
use crate::view::{self, LiveView};
use baton_asl::ExecutionStatus;
use baton_domain::error::{ErrorName, chain_text};
use baton_domain::release::{Release, ReleaseStatus, Stage};
use baton_domain::support::{CancelAsked, ask_to_cancel};
use baton_local_runner::{Finished, LocalBaton, ResumeError, Resumption, Run};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The live view's watcher while a run is followed: stopped, and the bars taken off the screen,
/// when dropped.
struct Watching<'a> {
    view: &'a LiveView,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.task.abort();
        self.view.finish();
    }
}

/// How `follow` reports the release once it ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Text,
    Json,
    /// Nothing on stdout: another report follows (a left-behind release picked up before a `--json` release).
    Quiet,
}

impl Report {
    pub fn of(json: bool) -> Report {
        if json { Report::Json } else { Report::Text }
    }
}

/// Follows a local run of `execution` to its end (the live view unless `json`), then prints the
/// release it carried and exits as its final state says. SIGINT or SIGTERM is a person's stop: the
/// request goes on the record with who sent it, the release rolls back what it touched (a queued
/// one touches nothing) and closes `cancelled`, freeing its lock, and this exits 130 or 143. A
/// second signal stops that too and leaves the release `interrupted` for `baton resume`. A
/// person's `baton cancel` makes this process roll the release back and close it likewise.
pub async fn follow(baton: &LocalBaton, service: &str, execution: &str, mut run: Run, live: Option<&LiveView>, report: Report) -> Outcome {
    let mut interrupts = match Interrupts::listen() {
        Ok(interrupts) => Some(interrupts),
        Err(err) => {
            errln!("baton: warning: cannot listen for SIGINT/SIGTERM (they kill the run, which `baton resume` picks up): {err}");
            None
        }
    };
    // The catalog is read again (it was when the run opened): each wave's bake for its countdown.
    let entry = baton.ports().catalog.service(service).await.ok();
    let bakes: BTreeMap<String, Duration> = entry
        .iter()
        .flat_map(|entry| &entry.delivery.deploy.waves)
        .map(|wave| (wave.name.clone(), Duration::from_secs(wave.bake.0)))
        .collect();
    if live.is_some()
        && let Some(entry) = &entry
    {
        err!("{}", view::service_lines(entry));
    }
    // One watcher for the run and the rollbacks it may go on to: its bars stay the same lines,
    // and leave the screen however this returns.
    let watching = live.map(|view| Watching {
        view,
        task: view.watch(baton.ports().store.clone(), service.to_owned(), execution.to_owned(), Duration::from_millis(200), bakes),
    });
    // The first signal, once the release is rolling back on it.
    let mut stopping: Option<i32> = None;
    let (outcome, release, signal) = loop {
        let stopper = run.stopper();
        let finished = run.finished();
        tokio::pin!(finished);
        let mut signal = None;
        let Finished { outcome, journal_error, lost_to, owned } = tokio::select! {
            done = &mut finished => done,
            got = async { match &mut interrupts { Some(interrupts) => interrupts.next().await, None => std::future::pending().await } } => {
                let name = signals::name(got);
                if stopping.is_none() {
                    errln!("baton: {name}: stopping the release: rolling back what it touched (again to leave it interrupted for `baton resume`)");
                } else {
                    errln!("baton: {name} again: stopping the rollback; the release stays interrupted (again to abort at once)");
                }
                stopper.stop(Some(ErrorName::Interrupted.as_str().to_owned()), Some(format!("stopped by {name}")));
                signal = Some(got);
                finished.await
            }
        };
        if let Some(taker) = lost_to {
            // Another process owns the release now: this one must not touch it again.
            return Err(Failure::failed(format!("this process stopped beating long enough to lose the release; {taker} runs it now"))
                .hint("`baton show` follows it"));
        }
        if let Some(err) = journal_error {
            errln!(
                "baton: warning: the execution journal is incomplete (`show --history` and a resume after a crash miss its end): {}",
                chain_text(&err)
            );
        }
        let release = match baton.ports().store.list_releases(service, None, 100).await {
            Ok(releases) => find_release(releases, execution, &outcome.output),
            Err(err) => {
                return Err(Failure::failed("the run ended but the store cannot be read").caused_by(&err));
            }
        };
        // Stopped with Baton.Interrupted and no signal here: a person cancelled it (`baton cancel`).
        let cancelled = outcome.status == ExecutionStatus::Aborted && outcome.error.as_deref() == Some(ErrorName::Interrupted.as_str());
        let first_signal = signal.filter(|_| stopping.is_none());
        let ended = match (&release, signal) {
            (Some(release), _) if !release.status.is_terminal() && ((cancelled && signal.is_none()) || first_signal.is_some()) => {
                let why = match first_signal {
                    Some(got) => {
                        stopping = Some(got);
                        stop_requested(baton, release, got).await
                    }
                    None => outcome.cause.clone().unwrap_or_else(|| "cancelled".to_owned()),
                };
                let how = Resumption::RollBack { why };
                // Rolled back under the claim it ran under: nobody else can pick it up between.
                let resumed = match owned {
                    Some(owned) => baton.resume_claimed(&release.id, owned, &how, &crate::person()).await,
                    None => baton.resume_release(release, &how, &crate::person()).await,
                };
                match resumed {
                    Ok((next, state)) => {
                        errln!("baton: cancelled: rolling {} back (at {state})", release.id);
                        run = next;
                        continue;
                    }
                    Err(err @ ResumeError::Owned { .. }) => {
                        return Err(Failure::failed(&err).hint("it rolls the cancelled release back"));
                    }
                    Err(err) => return Err(Failure::failed("the release was cancelled but cannot be rolled back").caused_by(&err)),
                }
            }
            (Some(stopped), Some(got)) if !stopped.status.is_terminal() => {
                let why = format!(
                    "stopped by {} while it rolled back (`baton resume {} --rollback` finishes the rollback)",
                    signals::name(got),
                    stopped.id
                );
                if let Err(err) = baton.mark_interrupted(stopped, &why).await {
                    errln!("baton: warning: cannot record the release as interrupted: {}", chain_text(&err));
                }
                errln!(
                    "baton: {} is left interrupted and holds the lock of {}: `baton resume {} --rollback` finishes rolling it back",
                    stopped.id,
                    stopped.service,
                    stopped.id
                );
                let reread = baton.ports().store.get_release(&stopped.id).await.ok().flatten().or(release.clone());
                (outcome, reread, signal)
            }
            _ => (outcome, release, signal.or(stopping)),
        };
        // Recorded as it ended (interrupted included) first: whoever claims it next reads that.
        if let Some(owned) = owned
            && let Err(err) = owned.give_up().await
        {
            errln!("baton: warning: cannot give the release's run up (another process may take it in seconds): {}", chain_text(&err));
        }
        break ended;
    };
    drop(watching);

    let rejected = release.is_none() && outcome.error.is_some() && signal.is_none();
    if report == Report::Json {
        let summary = json!({
            "execution": {"name": execution, "status": outcome.status, "error": outcome.error, "cause": outcome.cause},
            "release": release,
        });
        outln!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        match &release {
            Some(_) if report == Report::Quiet => {}
            Some(release) => {
                if release.execution.as_deref() != Some(execution) {
                    out!("{}", view::earlier_release(release, chrono::Utc::now()));
                }
                out!("{}", view::summary(release));
                out!("{}", view::next_steps(release, false));
                if matches!(release.status, ReleaseStatus::Superseded | ReleaseStatus::Skipped)
                    && let Some(cause) = outcome.output.as_ref().and_then(|o| o.pointer("/error/Cause")).and_then(|c| c.as_str())
                {
                    outln!("  why       {}", view::cause_message(cause));
                }
            }
            None => {
                let error = outcome.error.as_deref().unwrap_or("unknown");
                let cause = outcome.cause.as_deref().map(view::cause_message).unwrap_or_default();
                let message = format!("release not started: {error}: {cause}");
                let failure = if rejected { Failure::usage(message) } else { Failure::failed(message) };
                // A refusal leaves nothing behind: say so, and what to run once it is fixed.
                let next = if error == ErrorName::CatalogInvalid.as_str() {
                    format!(
                        "nothing was recorded and no lock is held; `baton catalog validate` lists the entry's errors, then run `baton release {service}` again"
                    )
                } else {
                    format!("nothing was recorded and no lock is held; once that is fixed, run `baton release {service}` again")
                };
                return Err(failure.hint(next));
            }
        }
    }
    if let Some(signal) = signal {
        return Ok(exit::code(exit::signalled(signal)));
    }
    if rejected {
        return Ok(exit::code(exit::USAGE));
    }
    Ok(exit::for_release(release.map(|r| r.status)))
}

/// Records `release`'s stop by `signal` as a person's cancel (who, and by what) on its record, as
/// `baton cancel` does, so it closes `cancelled` whoever finishes its rollback; answers the cause
/// its rollback records.
async fn stop_requested(baton: &LocalBaton, release: &Release, signal: i32) -> String {
    let reason = format!("{} on `baton release`", signals::name(signal));
    let person = crate::person();
    if release.stage == Stage::Rollback {
        // It failed by itself and rolls back already: that failure is what it ends with.
        errln!("baton: {} is rolling back already: letting the rollback finish", release.id);
        return format!("{person} stopped the release while it rolled back: {reason}");
    }
    match ask_to_cancel(baton.ports().store.as_ref(), &release.id, &person, &reason, chrono::Utc::now()).await {
        Ok(CancelAsked::Asked(asked)) => asked.cancel_requested.unwrap_or_else(|| format!("{person} cancelled the release: {reason}")),
        Ok(_) => format!("{person} cancelled the release: {reason}"),
        Err(err) => {
            errln!("baton: warning: cannot record the stop on the release (it still rolls back): {}", chain_text(&err));
            format!("{person} cancelled the release: {reason}")
        }
    }
}

/// The release this execution carried: the one it created, or (for a duplicate signal) the
/// one its output names.
fn find_release(releases: Vec<Release>, execution: &str, output: &Option<serde_json::Value>) -> Option<Release> {
    let named = output.as_ref().and_then(|o| o.pointer("/release/id")).and_then(|id| id.as_str()).map(str::to_owned);
    releases.into_iter().find(|r| r.execution.as_deref() == Some(execution) || Some(r.id.as_str()) == named.as_deref())
}

/// Resumes `release` as `how` says, then follows it to its end.
pub async fn pick_up(
    baton: &baton_local_runner::LocalBaton,
    release: &baton_domain::release::Release,
    how: &Resumption,
    person: &str,
    live: Option<&crate::view::LiveView>,
    report: Report,
) -> Outcome {
    match baton.resume_release(release, how, person).await {
        Ok((run, state)) => {
            let what = if matches!(how, Resumption::RunOn) { "resuming" } else { "rolling back" };
            errln!("baton: {what} {} ({}) at {state}", release.id, release.service);
            let execution = release.execution.clone().unwrap_or_default();
            follow(baton, &release.service, &execution, run, live, report).await
        }
        Err(err) => refused(release, err),
    }
}

/// Reports why `release` could not be picked up; nothing of it was touched.
pub fn refused(release: &baton_domain::release::Release, err: ResumeError) -> Outcome {
    match err {
        err @ ResumeError::Ended { .. } => Err(Failure::usage(&err)),
        err @ ResumeError::Owned { .. } => {
            Err(Failure::failed(&err).hint(format!("`baton cancel {}` stops it; or let it finish", release.id)))
        }
        err @ ResumeError::NotRegistered { .. } => Err(Failure::failed(&err).hint(format!("`baton resume {}` runs it on", release.id))),
        err => Err(Failure::failed(&err).sources_of(&err)),
    }
}
