#!/usr/bin/env bash
# The whole test suite, as CI runs it: `scripts/test.sh`.
#
#   1. builds the workspace and runs every unit, contract and end-to-end test (cargo test);
#   2. starts the emulators (LocalStack runtime, DynamoDB Local), runs the AWS adapter tests
#      against them, and stops them again, whatever happens;
#   3. runs the static checks on the SAM template and the state machine definitions;
#   4. runs the ASL conformance cases recorded from AWS against `baton asl run` (>= 98 %).
#
# Options: --no-emulators skips step 2 (say so loudly: those tests do not run),
#          --quick runs step 1 only.
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

section "build and unit/contract/end-to-end tests (cargo test --workspace)"
cargo test --workspace --no-fail-fast

if (( emulators )); then
    section "emulator tests (LocalStack + DynamoDB Local) [$(elapsed)]"
    trap 'scripts/emulators.sh stop || true' EXIT
    scripts/emulators.sh start
    eval "$(scripts/emulators.sh env)"
    cargo test -p baton-aws --features emulator-tests --no-fail-fast
    scripts/emulators.sh stop
    trap - EXIT
else
    echo "!! emulator tests NOT run (--no-emulators/--quick): the AWS adapters are untested in this run"
fi

if (( static )); then
    section "static checks: sam validate --lint, cfn-lint, asl-validator [$(elapsed)]"
    scripts/static-checks.sh
fi

if (( conformance )); then
    section "ASL conformance against cases recorded from AWS [$(elapsed)]"
    # Step 1 built the binary for the CLI's tests; building it alone would resolve features anew.
    .ci/conformance.sh "${CARGO_TARGET_DIR:-$ROOT/target}/debug/baton"
fi

section "all tests passed in $(elapsed)"
