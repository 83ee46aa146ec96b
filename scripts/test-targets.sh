#!/usr/bin/env bash
# Checks that no test is skipped by the test-target switches in the Cargo.toml files: a target
# with `test = false` builds no test binary (fewer binaries to compile and link, issue 23), so a
# `#[test]` in its sources would never run; a library with `doctest = false` gets no rustdoc
# pass, so a Rust example in its doc comments would never run.
# Prints each such test and exits 1; the fix is to drop the switch in that Cargo.toml.
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 - <<'PY'
import json, pathlib, re, subprocess, sys

out = subprocess.run(["cargo", "metadata", "--locked", "--no-deps", "--format-version", "1"],
                     capture_output=True, text=True)
if out.returncode != 0:
    sys.exit(f"test-targets: cargo metadata failed:\n{out.stderr}")

# Unit tests sit in `#[cfg(test)]` modules (a `#[test]` alone may be a macro's, for its caller).
UNIT_TESTS = re.compile(r"^\s*#\[cfg\((?:all\()?test\b")
FENCE = re.compile(r"^\s*//[/!]\s*```\s*(.*)$")
# Info strings of a fenced block that rustdoc runs (no info string at all is Rust too).
RUST_EXAMPLE = re.compile(r"^(?:rust|no_run|should_panic|compile_fail|edition\d+)?(?:,(?!.*\bignore\b).*)?$")

def sources(target):
    """The files a target compiles: its root, and for a crate's src/lib.rs the rest of src/
    (src/main.rs and src/bin/ are the binaries' roots)."""
    root = pathlib.Path(target["src_path"])
    if "lib" in target["kind"] and root.name == "lib.rs" and root.parent.name == "src":
        return [path for path in sorted(root.parent.rglob("*.rs"))
                if path != root.parent / "main.rs" and "bin" not in path.relative_to(root.parent).parts[:1]]
    return [root]

found = []
for package in json.loads(out.stdout)["packages"]:
    for target in package["targets"]:
        if not {"lib", "bin"} & set(target["kind"]):
            continue
        for path in sources(target):
            in_fence = False
            for number, line in enumerate(path.read_text().splitlines(), 1):
                where = f"{path.relative_to(pathlib.Path.cwd())}:{number}"
                if not target["test"] and UNIT_TESTS.match(line):
                    found.append(f"{where}: tests in {package['name']}'s {target['name']}, which says `test = false`")
                fence = FENCE.match(line)
                if fence:
                    opening = not in_fence
                    in_fence = opening
                    if opening and "lib" in target["kind"] and not target["doctest"] and RUST_EXAMPLE.match(fence[1].strip()):
                        found.append(f"{where}: a doc example in {package['name']}, which says `doctest = false` "
                                     "(mark it ```text or ```ignore, or drop the switch)")
for line in found:
    print(f"test-targets: {line}")
if found:
    sys.exit("test-targets: these tests would never run")
print("test-targets: every test in a target's sources runs")
PY
