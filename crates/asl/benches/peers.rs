//! Baton's executor on the peer benchmark definitions (../shared/peers), in-process, virtual waits.
//!
//!   cargo bench -p baton-asl --bench peers -- --suite "$PWD/../shared/peers/defs" [--quick]   (cargo runs benches in crates/asl)
//!   cargo bench -p baton-asl --bench peers -- --def F --input F --n N [--concurrency C] [--warmup W] [--expected F]
//!   cargo bench -p baton-asl --bench peers -- --parked N
//!
//! Prints one JSON line per run, shaped like the peers' (see ../shared/peers/README.md), plus
//! `matches_expected` when an expected output is given. `--suite` runs flow and flow-tasks x1000 (1 and 50
//! at a time), map1000 x10, and the memory of 1,000 executions parked on `.waitForTaskToken` (`--parked N`),
//! each in a process of its own. The allocator is the `baton` binary's (mimalloc), so the figures are
//! those of `baton asl run` and local releases.
use baton_asl::{Clock, ExecutionStart, ExecutionStatus, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

// As in the `baton` binary (cli/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The in-process stand-ins of `als_common.mjs` TASK_HANDLERS, keyed by Task state name as there.
struct PeerHandlers;

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| v.as_f64().unwrap_or_default() as i64)
}

#[async_trait::async_trait]
impl TaskInvoker for PeerHandlers {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let p = &call.payload;
        let text = |k: &str| p[k].as_str().map(str::to_owned).unwrap_or_else(|| p[k].to_string());
        Ok(match call.state_name.as_str() {
            "ResolveBuild" => {
                json!({"buildId": format!("{}@{}", text("name"), text("version")), "commit": "3f2a9c1", "statusCode": 200})
            }
            "ScanArtifact" => {
                json!({"clean": int(&p["sizeKb"]) % 7 != 0, "findings": int(&p["sizeKb"]) % 3})
            }
            "DeployRelease" => {
                json!({"deploymentId": format!("dep-{}", text("tag")), "target": p["target"], "replicas": p["replicas"]})
            }
            "NotifyRelease" => {
                json!({"delivered": p["channels"].as_array().map_or(0, Vec::len), "channels": p["channels"]})
            }
            other => {
                return Err(TaskFailure::new("States.TaskFailed", format!("no handler for state {other}")));
            }
        })
    }
}

/// Keeps the task tokens of parked executions so the memory probe can answer them afterwards.
#[derive(Default)]
struct Parker {
    tokens: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TaskInvoker for Parker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let token = call.task_token.ok_or_else(|| TaskFailure::new("Bench.NoToken", "expected a .waitForTaskToken resource"))?;
        self.tokens.lock().expect("tokens lock").push(token);
        Ok(Value::Null)
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A process figure from /proc/self/status, in MB (`VmRSS`, `VmHWM`).
fn proc_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

struct Run {
    def: PathBuf,
    input: PathBuf,
    n: usize,
    concurrency: usize,
    warmup: usize,
    expected: Option<PathBuf>,
}

async fn bench(run: &Run) -> Value {
    let setup = Instant::now();
    let text = std::fs::read_to_string(&run.def).unwrap_or_else(|e| panic!("cannot read {}: {e}", run.def.display()));
    let machine = Arc::new(StateMachine::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", run.def.display())));
    let input = read_json(&run.input);
    let executor = Executor::new(Arc::new(PeerHandlers), Clock::Virtual);
    let setup_s = setup.elapsed().as_secs_f64();
    let one = move |i: usize| {
        let (executor, machine, input) = (executor.clone(), machine.clone(), input.clone());
        async move {
            let t0 = Instant::now();
            let outcome = executor.run(machine, ExecutionStart::new(format!("bench-{i}"), input)).await;
            (t0.elapsed().as_secs_f64() * 1000.0, outcome)
        }
    };
    for i in 0..run.warmup {
        one(i).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::with_capacity(run.n)));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..run.concurrency.min(run.n))
        .map(|_| {
            let (next, results, one, n) = (next.clone(), results.clone(), one.clone(), run.n);
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let (ms, outcome) = one(i).await;
                    let result = match outcome.status {
                        ExecutionStatus::Succeeded => json!({"status": "SUCCEEDED", "output": outcome.output}),
                        _ => json!({"status": "FAILED", "error": outcome.error, "cause": outcome.cause}),
                    };
                    results.lock().expect("results lock").push((ms, result));
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("bench worker");
    }
    let total_s = t0.elapsed().as_secs_f64();
    let results = std::mem::take(&mut *results.lock().expect("results lock"));
    let mut lat: Vec<f64> = results.iter().map(|(ms, _)| *ms).collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((p / 100.0 * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1];
    let succeeded = results.iter().filter(|(_, r)| r["status"] == "SUCCEEDED").count();
    let first = &results[0].1;
    let identical = results.iter().all(|(_, r)| r == first);
    let name = |p: &Path| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut line = json!({
        "engine": "baton-asl",
        "engine_version": env!("CARGO_PKG_VERSION"),
        "runtime": format!("rust, tokio multi-thread ({} workers)", std::thread::available_parallelism().map_or(1, |n| n.get())),
        "def": name(&run.def),
        "input": name(&run.input),
        "n": run.n,
        "concurrency": run.concurrency,
        "warmup": run.warmup,
        "succeeded": succeeded,
        "failed": run.n - succeeded,
        "outputs_identical": identical,
        "setup_s": round(setup_s, 4),
        "total_s": round(total_s, 4),
        "exec_per_s": round(run.n as f64 / total_s, 2),
        "p50_ms": round(pct(50.0), 3),
        "p99_ms": round(pct(99.0), 3),
        "peak_rss_mb": round(proc_mb("VmHWM"), 1),
    });
    if let Some(expected) = &run.expected {
        line["matches_expected"] = json!(first["status"] == "SUCCEEDED" && first["output"] == read_json(expected));
    }
    if first["status"] != "SUCCEEDED" {
        line["first_error"] = first.clone();
    }
    line
}

/// RSS growth while `n` executions sit parked on `.waitForTaskToken`, then all are answered.
async fn parked_memory(n: usize) -> Value {
    let machine = Arc::new(
        StateMachine::from_value(&json!({
            "StartAt": "Approve",
            "States": {"Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "approve", "Payload": {"token.$": "$$.Task.Token", "release.$": "$"}},
                "End": true
            }}
        }))
        .expect("the parked definition is valid"),
    );
    let parker = Arc::new(Parker::default());
    let executor = Executor::new(parker.clone(), Clock::Virtual);
    let input = json!({"service": "checkout", "version": "1.4.2", "environment": "prod"});
    let before = proc_mb("VmRSS");
    let handles: Vec<_> =
        (0..n).map(|i| executor.start(machine.clone(), ExecutionStart::new(format!("parked-{i}"), input.clone()))).collect();
    while parker.tokens.lock().expect("tokens lock").len() < n {
        tokio::task::yield_now().await;
    }
    let parked = proc_mb("VmRSS");
    for token in parker.tokens.lock().expect("tokens lock").drain(..) {
        executor.send_task_success(&token, json!({"approved": true})).expect("the execution is parked on this token");
    }
    let mut succeeded = 0;
    for h in handles {
        succeeded += usize::from(h.outcome().await.status == ExecutionStatus::Succeeded);
    }
    json!({
        "engine": "baton-asl",
        "probe": "parked_waitForTaskToken",
        "n": n,
        "succeeded_after_answer": succeeded,
        "rss_before_mb": round(before, 1),
        "rss_parked_mb": round(parked, 1),
        "rss_delta_mb_per_1000": round((parked - before) * 1000.0 / n as f64, 2),
    })
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// `--suite`: every run in a process of its own, so each line's peak RSS is that run's alone.
fn suite(dir: &Path, quick: bool) {
    let (n, nmap) = if quick { (100, 3) } else { (1000, 10) };
    let runs = [
        ("flow.asl.json", "flow.input.json", "flow.output.json", n, 1),
        ("flow.asl.json", "flow.input.json", "flow.output.json", n, 50),
        ("flow.asl.json", "flow-ok.input.json", "flow-ok.output.json", n, 1),
        ("flow-tasks.asl.json", "flow.input.json", "flow-tasks.output.json", n, 1),
        ("flow-tasks.asl.json", "flow.input.json", "flow-tasks.output.json", n, 50),
        ("map1000.asl.json", "map1000.input.json", "map1000.output.json", nmap, 1),
    ];
    let me = std::env::current_exe().expect("the bench's own path");
    let path = |name: &str| dir.join(name).display().to_string();
    let mut children: Vec<Vec<String>> = runs
        .iter()
        .map(|(def, input, expected, n, concurrency)| {
            let expected = dir.join("expected").join(expected).display().to_string();
            let (n, c, w) = (n.to_string(), concurrency.to_string(), 10.min(*n).to_string());
            ["--def", &path(def), "--input", &path(input), "--n", &n, "--concurrency", &c, "--warmup", &w, "--expected", &expected]
                .map(str::to_owned)
                .to_vec()
        })
        .collect();
    children.push(vec!["--parked".to_owned(), "1000".to_owned()]);
    for args in children {
        let status = std::process::Command::new(&me).args(&args).status().expect("the bench can run itself");
        assert!(status.success(), "bench run {args:?} failed: {status}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num =
        |name: &str, default: usize| arg(&args, name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} expects a number")));
    if let Some(dir) = arg(&args, "--suite") {
        return suite(Path::new(&dir), args.iter().any(|a| a == "--quick"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        if let Some(n) = arg(&args, "--parked") {
            println!("{}", parked_memory(n.parse().expect("--parked expects a number")).await);
        } else if let (Some(def), Some(input)) = (arg(&args, "--def"), arg(&args, "--input")) {
            let run = Run {
                def: def.into(),
                input: input.into(),
                n: num("--n", 100),
                concurrency: num("--concurrency", 1).max(1),
                warmup: num("--warmup", 0),
                expected: arg(&args, "--expected").map(PathBuf::from),
            };
            println!("{}", bench(&run).await);
        } else {
            eprintln!("usage: peers --suite DEFS_DIR [--quick] | --def F --input F [--n N] [--concurrency C] [--warmup W] [--expected F] | --parked N");
            std::process::exit(2);
        }
    });
}
