#!/usr/bin/env bash
# `baton dashboard` at scale: the organisation of bench/dora.sh (2,000 services in 50 teams, a
# year of releases: 1,000,000 release records by default) in the embedded store, then each view
# (Now, a team, a service, the organisation) fetched ten times from `baton dashboard --serve`,
# printing each view's p50 and max time to answer and its weight. The target for the first view
# (Now) is 300 ms and 300 KB. CI runs a small organisation of the same test.
#
#   bench/dashboard.sh [--release] [records]
# With --release the server timed is a release build of `baton` (built first, into
# target/dora-release), as users run it.
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = --release ]; then
    shift
    release_dir=${CARGO_TARGET_DIR:-target}/dora-release
    CARGO_TARGET_DIR=$release_dir cargo build --release -p baton-cli
    export BATON_DORA_BIN=$release_dir/release/baton
fi
BATON_DORA_RECORDS=${1:-1000000} exec cargo test --workspace --test cli \
    -- --ignored --exact dora_scale::dashboard_at_scale --nocapture
