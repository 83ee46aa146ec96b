//! The `github_webhook` fuzz target's seed corpus and saved crash reproducers
//! (`fuzz/corpus/github_webhook/`, with `regressions/`), replayed on stable through the target's own
//! body: no input panics or publishes without a valid signature, and each ends within a second.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files(&path)) } else { out.push(path) }
    }
    out.sort();
    out
}

#[test]
fn github_webhook_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/github_webhook");
    let inputs = files(&dir);
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let started = Instant::now();
        baton_github_webhook::fuzzing::request(&data);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{} took {took:?}", path.display());
    }
}
