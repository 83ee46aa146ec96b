//! The fuzz targets' seed corpora and saved crash reproducers (`fuzz/corpus/<target>/`, with
//! `regressions/`), replayed on stable through the targets' own bodies (`baton_asl::fuzzing`): no
//! input panics, and each ends well within the fuzzer's 10 s timeout.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Per input, in a debug build; the fuzzer allows 10 s to an optimised one.
const BOUND: Duration = Duration::from_secs(10);

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files(&path)) } else { out.push(path) }
    }
    out.sort();
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let inputs = files(&dir);
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let started = Instant::now();
        body(&data);
        let took = started.elapsed();
        assert!(took < BOUND, "{} took {took:?}", path.display());
    }
}

#[test]
fn asl_definition_corpus() {
    replay("asl_definition", baton_asl::fuzzing::definition);
}

#[test]
fn asl_jsonpath_corpus() {
    replay("asl_jsonpath", baton_asl::fuzzing::jsonpath);
}

#[test]
fn asl_intrinsics_corpus() {
    replay("asl_intrinsics", baton_asl::fuzzing::intrinsic);
}

#[test]
fn asl_execution_corpus() {
    replay("asl_execution", baton_asl::fuzzing::execution);
}
