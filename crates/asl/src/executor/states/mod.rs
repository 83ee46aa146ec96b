//! Running one state (and parsing it, beside): the simple states inline, the rest in a module per family; Retry and Catch
//! around Task, Parallel and Map.
mod branches;
mod fail;
mod task;
mod wait;

use super::context::StateContext;
use super::engine::{Failure, StateRun, Thread};
use super::io::{apply_result_path, bounded, eval, input_path, output_path};
use crate::choice::Rule;
use crate::definition::{Catcher, Cx, Kind, Recovery, Retrier, Transition};
use crate::env::Env;
use crate::errors;
use branches::{run_map, run_parallel};
use fail::fail_field;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use task::run_task;
use wait::wait_delay;

pub(crate) use branches::{MapSpec, ParallelSpec};
pub(crate) use fail::FailField;
pub(crate) use task::TaskSpec;
pub(crate) use wait::WaitSpec;

/// The simple states' parsing, beside their running below.
impl Cx {
    pub(crate) fn choice(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Option<Kind> {
        let items = self.non_empty_array(obj, at, "Choices", "choice rules")?;
        let mut choices = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let here = format!("{at}/Choices/{i}");
            let mut problems = Vec::new();
            let rule = Rule::parse(item, &here, true, &mut problems);
            self.absorb(problems);
            let next = item.get("Next").filter(|n| n.is_string()).and_then(|n| self.target(n, &format!("{here}/Next"), index));
            if let (Some(rule), Some(next)) = (rule, next) {
                choices.push((rule, next));
            }
        }
        let default = match obj.get("Default") {
            Some(d) => Some(self.target(d, &format!("{at}/Default"), index)?),
            None => None,
        };
        Some(Kind::Choice { choices, default })
    }

    pub(crate) fn pass(&mut self, obj: &Map<String, Value>, at: &str) -> Kind {
        let parameters = self.template(obj, at, "Parameters");
        let result_path = self.result_path(obj, at, "ResultPath");
        Kind::Pass { parameters, result: obj.get("Result").cloned(), result_path }
    }
}

pub(crate) async fn run_state(th: &mut Thread, run: &mut StateRun<'_>, raw: Arc<Value>) -> Result<(Arc<Value>, Transition), Failure> {
    let state = run.state;
    match &state.kind {
        Kind::Pass { parameters, result, result_path } => {
            let effective = input_path(th, run, &state.input_path, &raw)?;
            let produced = match (result, parameters) {
                (Some(r), _) => Arc::new(r.clone()),
                (None, Some(p)) => Arc::new(eval(th, run, p, &effective)?),
                (None, None) => effective,
            };
            let output = apply_result_path(th, run, raw, produced, result_path)?;
            Ok((output_path(th, run, &state.output_path, output)?, state.next))
        }
        Kind::Choice { choices, default } => {
            let effective = input_path(th, run, &state.input_path, &raw)?;
            let context = StateContext { exec: &th.exec, run };
            let env = Env::lazy(&effective, &context);
            let mut chosen = None;
            for (rule, next) in choices {
                if rule.eval(&env).map_err(|e| run.fail(e))? {
                    chosen = Some(*next);
                    break;
                }
            }
            let next = chosen.or(*default).ok_or_else(|| Failure::new(errors::NO_CHOICE_MATCHED, "No Matches!".into()))?;
            Ok((output_path(th, run, &state.output_path, effective)?, Transition::Next(next)))
        }
        Kind::Wait(spec) => {
            let effective = input_path(th, run, &state.input_path, &raw)?;
            let delay = wait_delay(th, run, spec, &effective)?;
            th.sleep(delay).await;
            Ok((output_path(th, run, &state.output_path, effective)?, state.next))
        }
        Kind::Succeed => {
            let effective = input_path(th, run, &state.input_path, &raw)?;
            Ok((output_path(th, run, &state.output_path, effective)?, Transition::End))
        }
        Kind::Fail { error, cause } => {
            let error = fail_field(th, run, error.as_ref(), &raw)?;
            let cause = fail_field(th, run, cause.as_ref(), &raw)?;
            Err(Failure { error, cause })
        }
        Kind::Task(spec) => recoverable(th, run, raw, &spec.recovery).await,
        Kind::Parallel(spec) => recoverable(th, run, raw, &spec.recovery).await,
        Kind::Map(spec) => recoverable(th, run, raw, &spec.recovery).await,
    }
}

/// Task, Parallel and Map: attempts under Retry, then Catch.
async fn recoverable(
    th: &mut Thread,
    run: &mut StateRun<'_>,
    raw: Arc<Value>,
    recovery: &Recovery,
) -> Result<(Arc<Value>, Transition), Failure> {
    let mut attempts = vec![0u64; recovery.retry.len()];
    loop {
        let attempt = match &run.state.kind {
            Kind::Task(spec) => run_task(th, run, spec, &raw).await,
            Kind::Parallel(spec) => run_parallel(th, run, spec, &raw).await,
            Kind::Map(spec) => run_map(th, run, spec, &raw).await,
            _ => unreachable!("only Task, Parallel and Map states have Retry and Catch"),
        };
        // A result over the size quota is an error Retry and Catch see, as AWS raises it.
        let failure = match attempt.and_then(|result| bounded(th, run, result)) {
            Ok(result) => {
                // Without a ResultSelector, the result was just measured.
                let output = match &recovery.result_selector {
                    Some(selector) => {
                        let selected = Arc::new(eval(th, run, selector, &result)?);
                        apply_result_path(th, run, raw, selected, &recovery.result_path)?
                    }
                    None if recovery.result_path.is_whole() => result,
                    None => apply_result_path(th, run, raw, result, &recovery.result_path)?,
                };
                return Ok((output_path(th, run, &run.state.output_path, output)?, run.state.next));
            }
            Err(f) => f,
        };
        if let Some(delay) = retry_delay(&recovery.retry, &mut attempts, &failure) {
            th.sleep(delay).await;
            run.retry_count += 1;
            continue;
        }
        return match find_catcher(&recovery.catch, &failure) {
            Some(catcher) => {
                let output = apply_result_path(th, run, raw, Arc::new(failure.as_value()), &catcher.result_path)?;
                Ok((output, Transition::Next(catcher.next)))
            }
            None => Err(failure),
        };
    }
}

/// The delay before the next attempt, or None when no retrier applies or the matching one is exhausted.
fn retry_delay(retriers: &[Retrier], attempts: &mut [u64], failure: &Failure) -> Option<Duration> {
    let (i, r) = retriers.iter().enumerate().find(|(_, r)| r.errors.iter().any(|e| errors::matches(e, failure.name())))?;
    if attempts[i] >= r.max_attempts {
        return None;
    }
    let mut seconds = r.interval_seconds as f64 * r.backoff_rate.powi(attempts[i].min(i32::MAX as u64) as i32);
    if let Some(max) = r.max_delay_seconds {
        seconds = seconds.min(max as f64);
    }
    if r.full_jitter {
        seconds *= rand::random::<f64>();
    }
    attempts[i] += 1;
    Some(Duration::from_secs_f64(seconds.min(u32::MAX as f64)))
}

fn find_catcher<'c>(catchers: &'c [Catcher], failure: &Failure) -> Option<&'c Catcher> {
    catchers.iter().find(|c| c.errors.iter().any(|e| errors::matches(e, failure.name())))
}
