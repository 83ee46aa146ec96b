#!/usr/bin/env bash
# The whole test suite, as CI runs it: `scripts/test.sh`.
#
#   1. starts the emulators (LocalStack runtime, DynamoDB Local, moto; installed into .emulators/
#      the first time) while every target builds, runs every unit, contract, end-to-end and
#      emulator test (`cargo test --workspace`, the CLI's tests beside the rest), and stops the
#      emulators again, whatever happens;
#   2. runs the static checks on the SAM template and the state machine definitions, and the
#      tests of the cold-start harness (bench/lambda/coldstart);
#   3. runs the ASL conformance cases recorded from AWS against `baton asl run` (>= 98 %).
#
# Options: --no-emulators runs step 1 without the emulator tests (and says so),
#          --quick: that and nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

emulators=1
static=1
conformance=1
for arg in "$@"; do
    case "$arg" in
        --no-emulators) emulators=0 ;;
        --quick) emulators=0; static=0; conformance=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

section() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

section "one build for the README's two commands (scripts/shared-build.sh) [$(elapsed)]"
scripts/shared-build.sh
section "no test left out by a test = false or doctest = false (scripts/test-targets.sh) [$(elapsed)]"
scripts/test-targets.sh

# The CLI's integration tests spend their time waiting on the `baton` processes they start (bakes,
# kills, locks: 110 s of wall time for a few CPU-seconds), the rest of the suite mostly computing,
# so the two run side by side once everything is built; the CLI's output follows the rest's.
# Nothing compiles while tests run: the build before builds every target, and the local stack's
# own `cargo build --workspace --all-targets` (its tests run the function binaries) finds it done.
run_tests() {
    local cli_log="${CARGO_TARGET_DIR:-$ROOT/target}/cli-tests.log" cli_pid failed=0
    mkdir -p "$(dirname "$cli_log")"
    cargo test --workspace --no-fail-fast --bin baton --test cli -- "$@" >"$cli_log" 2>&1 &
    cli_pid=$!
    cargo test --workspace --no-fail-fast --exclude baton-cli -- "$@" || failed=1
    wait "$cli_pid" || failed=1
    section "the CLI's tests (cargo test --workspace --bin baton --test cli, run beside the rest) [$(elapsed)]"
    cat "$cli_log"
    return "$failed"
}

if (( emulators )); then
    # One cargo build for everything: a separate `-p baton-aws` run resolves features
    # differently and rebuilds the SDK stack (minutes on two cores). The emulators start (and
    # install, the first time) while it compiles: they take a minute or more, mostly waiting.
    section "emulators: LocalStack, DynamoDB Local, moto, starting beside the build [$(elapsed)]"
    trap 'scripts/emulators.sh stop || true' EXIT
    emulators_log="$(mktemp)"
    scripts/emulators.sh start >"$emulators_log" 2>&1 &
    emulators_pid=$!
    section "build every target, test binaries included (cargo build --workspace --all-targets) [$(elapsed)]"
    cargo build --workspace --all-targets
    section "waiting for the emulators [$(elapsed)]"
    emulators_ok=1
    wait "$emulators_pid" || emulators_ok=0
    cat "$emulators_log"
    rm -f "$emulators_log"
    (( emulators_ok )) || { echo "test.sh: scripts/emulators.sh start failed (its output is above)" >&2; exit 1; }
    eval "$(scripts/emulators.sh env)"
    section "unit, contract, end-to-end and emulator tests (cargo test --workspace) [$(elapsed)]"
    # baton-local-stack's emulator tests release the examples through the function binaries
    # (the build above made them) and check their AWS operations against the template's IAM.
    run_tests
    scripts/emulators.sh stop
    trap - EXIT
else
    section "build every test binary (cargo test --workspace --no-run) [$(elapsed)]"
    cargo test --workspace --no-run
    section "unit, contract and end-to-end tests (cargo test --workspace, emulator:: tests skipped) [$(elapsed)]"
    run_tests --skip emulator::
    echo "!! emulator tests NOT run (--no-emulators/--quick): the AWS adapters are untested in this run"
fi

if (( static )); then
    section "static checks: sam validate --lint, cfn-lint, asl-validator [$(elapsed)]"
    scripts/static-checks.sh
    section "the Lambda cold-start harness's own tests [$(elapsed)]"
    python3 -m unittest discover -s bench/lambda/coldstart
fi

if (( conformance )); then
    section "ASL conformance against cases recorded from AWS [$(elapsed)]"
    # Step 1 built the binary for the CLI's tests; building it alone would resolve features anew.
    .ci/conformance.sh "${CARGO_TARGET_DIR:-$ROOT/target}/debug/baton"
fi

section "all tests passed in $(elapsed)"
