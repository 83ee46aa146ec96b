#!/usr/bin/env bash
# Checks that the README's two commands share one build: every crate the `baton` binary uses
# (`cargo run -p baton-cli`) gets the features that `scripts/test.sh`'s `cargo test --workspace`
# gives it, dev-dependencies included. Cargo compiles a crate once per feature set, so a crate
# listed here would be compiled twice (with it, the AWS SDK and everything above it).
# Prints each difference and exits 1; the fix is a line in crates/workspace-hack/Cargo.toml.
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 - <<'PY'
import re, subprocess, sys

def features(args):
    out = subprocess.run(["cargo", "tree", "--locked", "-f", "{p} {f}", "--prefix", "none", *args],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"shared-build: cargo tree {' '.join(args)} failed:\n{out.stderr}")
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"(\S+) (v\S+)(?: \([^)]*\))?(?: (\S+))?(?: \(\*\))?$", line.strip())
        if m:
            found.setdefault((m[1], m[2]), set()).update(filter(None, (m[3] or "").split(",")))
    return found

run = features(["-p", "baton-cli", "-e", "normal,build"])
test = features(["--workspace", "-e", "normal,build,dev"])
apart = [(name, version, sorted(test[(name, version)] - wanted))
         for (name, version), wanted in sorted(run.items()) if test.get((name, version), wanted) != wanted]
for name, version, missing in apart:
    print(f"shared-build: {name} {version}: the test build adds {', '.join(missing) or '(other features)'}")
if apart:
    sys.exit("shared-build: `cargo run -p baton-cli` would compile these again after scripts/test.sh: "
             "name them in crates/workspace-hack/Cargo.toml")
print(f"shared-build: `cargo run -p baton-cli` and the test build agree on the features of {len(run)} crates")
PY
