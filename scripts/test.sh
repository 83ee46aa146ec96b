#!/usr/bin/env bash
# The whole test suite, as CI runs it: `scripts/test.sh`.
#
#   1. starts the emulators (LocalStack runtime, DynamoDB Local; installed into .emulators/
#      the first time), runs every unit, contract, end-to-end and emulator test in one
#      `cargo test --workspace`, and stops the emulators again, whatever happens;
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

if (( emulators )); then
    # One cargo invocation for everything: a separate `-p baton-aws` run resolves features
    # differently and rebuilds the SDK stack (minutes on two cores).
    section "emulators: LocalStack, DynamoDB Local, moto [$(elapsed)]"
    trap 'scripts/emulators.sh stop || true' EXIT
    scripts/emulators.sh start
    eval "$(scripts/emulators.sh env)"
    section "unit, contract, end-to-end and emulator tests (cargo test --workspace) [$(elapsed)]"
    # baton-local-stack's emulator tests release the examples through the function binaries
    # (built by the test itself) and check their AWS operations against the template's IAM.
    # The CLI's github_actions_example test runs examples/github-stand-in's binary, which this
    # same invocation builds before any test runs (its crate has integration tests of its own).
    cargo test --workspace --no-fail-fast
    scripts/emulators.sh stop
    trap - EXIT
else
    section "unit, contract and end-to-end tests (cargo test --workspace, emulator:: tests skipped)"
    cargo test --workspace --no-fail-fast -- --skip emulator::
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
