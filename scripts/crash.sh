#!/bin/sh
# The crash campaign: SIGKILLs `baton release` of the example service at every stage boundary
# and at random moments, each next release picking the killed one up, then checks every record is
# closed, no lock is held and every target runs the artifact its record says.
#   scripts/crash.sh [kills]        (default 40; BATON_CRASH_SEED=<n> replays a campaign)
# A short fixed version (six kills) runs in `cargo test --workspace` (cli/tests/cli/crash.rs).
set -eu
cd "$(dirname "$0")/.."
kills=${1:-40}
BATON_CRASH_KILLS=$kills exec cargo test --workspace \
    --test cli -- --ignored --exact crash::crash_campaign --nocapture
