//! Parallel and Map: their branches and item processor parsed as sub-programs, run side by side within their execution's task.
use crate::definition::{Amount, Cx, IoPath, Program, Recovery};
use crate::env::compact;
use crate::errors;
use crate::executor::engine::{Failure, StateRun, Thread, run_program};
use crate::executor::io::{eval, input_path, resolve_amount, select};
use crate::history::{EventDetails, EventType, MoreDetails};
use crate::payload::Template;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub(crate) struct ParallelSpec {
    pub branches: Vec<Program>,
    pub parameters: Option<Template>,
    pub recovery: Recovery,
}

#[derive(Debug)]
pub(crate) struct MapSpec {
    pub items_path: IoPath,
    pub item_selector: Option<Template>,
    pub processor: Program,
    pub max_concurrency: Amount<u64>,
    pub tolerated_count: Option<Amount<i64>>,
    pub tolerated_percentage: Option<Amount<f64>>,
    pub recovery: Recovery,
}

impl Cx {
    fn sub_program(&mut self, v: &Value, at: &str, extra: &[&str]) -> Option<Program> {
        let Some(obj) = v.as_object() else {
            self.err(at, "expected an object with StartAt and States");
            return None;
        };
        let mut allowed = vec!["StartAt", "States", "Comment"];
        allowed.extend_from_slice(extra);
        self.unknown_fields(obj, at, &allowed);
        self.program(obj, at)
    }

    pub(crate) fn parallel(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Option<ParallelSpec> {
        let items = self.non_empty_array(obj, at, "Branches", "branches")?;
        let branches: Vec<Option<Program>> =
            items.iter().enumerate().map(|(i, b)| self.sub_program(b, &format!("{at}/Branches/{i}"), &[])).collect();
        let parameters = self.template(obj, at, "Parameters");
        let recovery = self.recovery(obj, at, index);
        Some(ParallelSpec { branches: branches.into_iter().collect::<Option<_>>()?, parameters, recovery })
    }

    pub(crate) fn map(&mut self, obj: &Map<String, Value>, at: &str, index: &HashMap<&str, usize>) -> Option<MapSpec> {
        let processor = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.err(&format!("{at}/Iterator"), "use either 'ItemProcessor' or the older 'Iterator', not both");
                None
            }
            (Some(p), None) => self.sub_program(p, &format!("{at}/ItemProcessor"), &["ProcessorConfig"]),
            (None, Some(p)) => self.sub_program(p, &format!("{at}/Iterator"), &["ProcessorConfig"]),
            (None, None) => {
                self.err(&format!("{at}/ItemProcessor"), "a Map state needs an ItemProcessor (or the older Iterator)");
                None
            }
        };
        let item_selector = match (obj.contains_key("ItemSelector"), obj.contains_key("Parameters")) {
            (true, true) => {
                self.err(&format!("{at}/Parameters"), "use either 'ItemSelector' or the older 'Parameters', not both");
                None
            }
            (true, false) => self.template(obj, at, "ItemSelector"),
            (false, _) => self.template(obj, at, "Parameters"),
        };
        let max_concurrency = self.amount(obj, at, "MaxConcurrency", |cx| cx.int_field(obj, at, "MaxConcurrency", 0).map(|n| n as u64));
        let tolerated_count = self.amount(obj, at, "ToleratedFailureCount", |cx| cx.int_field(obj, at, "ToleratedFailureCount", 0));
        let tolerated_percentage =
            self.amount(obj, at, "ToleratedFailurePercentage", |cx| match obj["ToleratedFailurePercentage"].as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                _ => {
                    cx.err(&format!("{at}/ToleratedFailurePercentage"), "expected a number between 0 and 100");
                    None
                }
            });
        let items_path = self.io_path(obj, at, "ItemsPath");
        let recovery = self.recovery(obj, at, index);
        Some(MapSpec {
            items_path,
            item_selector,
            processor: processor?,
            max_concurrency: max_concurrency.unwrap_or(Amount::Fixed(0)),
            tolerated_count,
            tolerated_percentage,
            recovery,
        })
    }
}

/// Runs sub-programs side by side as futures of the execution's own task: they interleave at every await
/// (a Wait, a task, a token) as AWS's branches do, without a tokio task, a cross-thread wake-up and a
/// join handle per iteration; separate executions still run in parallel on the runtime's workers. Unless
/// failures are tolerated, the first one ends the rest (dropping their futures cancels them).
///
/// Event ids chain as in AWS's histories: a child's first event follows the latest event of a child
/// that has ended (or the state's own, before any has), and the state's next event follows the last
/// event of the child that ended last. For a Map (`iterations` names it), each iteration records
/// MapIterationStarted when it starts, and MapIterationSucceeded or MapIterationFailed after its last
/// event when it ends, aside from that chain.
async fn run_children(
    th: &mut Thread,
    jobs: Vec<(&Program, Arc<Value>)>,
    limit: Option<usize>,
    tolerate_failures: bool,
    iterations: Option<&Arc<str>>,
) -> Vec<(usize, Result<Arc<Value>, Failure>)> {
    let chain = AtomicU64::new(th.previous);
    let mut running = FuturesUnordered::new();
    let mut queue = jobs.into_iter().enumerate();
    let mut results = Vec::with_capacity(queue.len());
    loop {
        // Start children in item order as the limit allows, so `MaxConcurrency: 1` runs items one
        // after the other in order, and a failure stops the items not yet started.
        while limit.is_none_or(|l| running.len() < l) {
            let Some((i, (program, input))) = queue.next() else { break };
            let (mut child, chain) = (th.child(), &chain);
            running.push(async move {
                child.previous = chain.load(Ordering::Relaxed);
                if let Some(name) = iterations {
                    child.record(EventType::MapIterationStarted, Some(iteration(name, i)));
                }
                let (child, result) = run_program(child, program, input).await;
                (i, child, result)
            });
        }
        let Some((i, mut child, result)) = running.next().await else { return results };
        th.virtual_elapsed = th.virtual_elapsed.max(child.virtual_elapsed);
        th.previous = child.previous;
        chain.store(child.previous, Ordering::Relaxed);
        if let Some(name) = iterations {
            let ended = if result.is_ok() { EventType::MapIterationSucceeded } else { EventType::MapIterationFailed };
            child.record(ended, Some(iteration(name, i)));
        }
        let failed = result.is_err();
        results.push((i, result));
        if failed && !tolerate_failures {
            return results;
        }
    }
}

fn iteration(name: &Arc<str>, index: usize) -> EventDetails {
    EventDetails { name: Some(name.clone()), index: Some(index), ..Default::default() }
}

pub(crate) async fn run_parallel(
    th: &mut Thread,
    run: &mut StateRun<'_>,
    spec: &ParallelSpec,
    raw: &Arc<Value>,
) -> Result<Arc<Value>, Failure> {
    let effective = input_path(th, run, &run.state.input_path, raw)?;
    let input = match &spec.parameters {
        Some(p) => Arc::new(eval(th, run, p, &effective)?),
        None => effective,
    };
    th.record(EventType::ParallelStateStarted, None);
    let jobs = spec.branches.iter().map(|b| (b, input.clone())).collect();
    let mut results = run_children(th, jobs, None, false, None).await;
    if let Some(failure) = results.iter().find_map(|(_, r)| r.as_ref().err().cloned()) {
        th.record(EventType::ParallelStateFailed, Some(EventDetails::failure(failure.error.clone(), failure.cause.clone())));
        return Err(failure);
    }
    results.sort_by_key(|(i, _)| *i);
    th.record(EventType::ParallelStateSucceeded, None);
    Ok(Arc::new(Value::Array(results.into_iter().filter_map(|(_, r)| r.ok().map(Arc::unwrap_or_clone)).collect())))
}

pub(crate) async fn run_map(th: &mut Thread, run: &mut StateRun<'_>, spec: &MapSpec, raw: &Arc<Value>) -> Result<Arc<Value>, Failure> {
    let effective = input_path(th, run, &run.state.input_path, raw)?;
    let items = match &spec.items_path {
        IoPath::Whole => Value::clone(&effective),
        IoPath::Empty => Value::Object(Map::new()),
        IoPath::Path(p) => select(th, run, p, &effective)?,
    };
    let Value::Array(items) = items else {
        return Err(run.runtime(format!(
            "The Map state's items (ItemsPath) must be a JSON array, got {}: {}",
            crate::jsonpath::type_name(&items),
            compact(&items)
        )));
    };
    let max_concurrency = resolve_amount(th, run, &spec.max_concurrency, &effective, "MaxConcurrency", "integer", |v| v.as_u64())?;
    let tolerated_count = spec
        .tolerated_count
        .as_ref()
        .map(|a| resolve_amount(th, run, a, &effective, "ToleratedFailureCount", "integer", |v| v.as_i64()))
        .transpose()?;
    if tolerated_count.is_some_and(|c| c < 0) {
        return Err(run.runtime("ToleratedFailureCount cannot be negative.".into()));
    }
    let tolerated_percentage = spec
        .tolerated_percentage
        .as_ref()
        .map(|a| resolve_amount(th, run, a, &effective, "ToleratedFailurePercentage", "float", |v| v.as_f64()))
        .transpose()?;
    if tolerated_percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(run.runtime("ToleratedFailurePercentage must be between 0 and 100.".into()));
    }
    let tolerant = tolerated_count.is_some_and(|c| c > 0) || tolerated_percentage.is_some_and(|p| p > 0.0);

    th.record(EventType::MapStateStarted, Some(EventDetails::more(MoreDetails { length: Some(items.len()), ..Default::default() })));
    let len = items.len();
    let mut jobs = Vec::with_capacity(len);
    for (index, item) in items.into_iter().enumerate() {
        let input = match &spec.item_selector {
            Some(selector) => {
                run.map_item = Some((index, item));
                let selected = eval(th, run, selector, &effective);
                run.map_item = None;
                Arc::new(selected?)
            }
            None => Arc::new(item),
        };
        jobs.push((&spec.processor, input));
    }
    let asked = usize::try_from(max_concurrency).ok().filter(|n| *n > 0);
    let ceiling = th.exec.inner.quotas.then_some(crate::limits::INLINE_MAP_CONCURRENCY);
    let limit = match (asked, ceiling) {
        (Some(asked), Some(ceiling)) => Some(asked.min(ceiling)),
        (asked, ceiling) => asked.or(ceiling),
    };
    let results = run_children(th, jobs, limit, tolerant, Some(&run.state.name)).await;

    let mut outputs = vec![Value::Null; len];
    let mut failures = 0usize;
    let mut first_failure = None;
    for (index, result) in results {
        let output = match result {
            Ok(v) => Arc::unwrap_or_clone(v),
            Err(f) => {
                failures += 1;
                let v = f.as_value();
                first_failure.get_or_insert(f);
                v
            }
        };
        if let Some(slot) = outputs.get_mut(index) {
            *slot = output;
        }
    }
    if let Some(failure) = first_failure {
        let within = tolerant
            && tolerated_count.is_none_or(|c| failures as i64 <= c)
            && tolerated_percentage.is_none_or(|p| failures as f64 * 100.0 / len as f64 <= p);
        if !within {
            let failure = if tolerant {
                Failure::new(errors::EXCEED_TOLERATED_FAILURE_THRESHOLD, "The specified tolerated failure threshold was exceeded".into())
            } else {
                failure
            };
            let details = EventDetails::failure(failure.error.clone(), failure.cause.clone());
            th.record(EventType::MapStateFailed, Some(details));
            return Err(failure);
        }
    }
    th.record(EventType::MapStateSucceeded, None);
    Ok(Arc::new(Value::Array(outputs)))
}
