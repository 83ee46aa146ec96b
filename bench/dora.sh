#!/usr/bin/env bash
# `baton dora` at scale: generates an organisation (2,000 services in 50 teams, a year of
# releases: 1,000,000 release records by default) in the embedded store's tables, then times
# `baton dora --team T --since 90d --json` run as a user runs it (ten runs), checking its figures
# against what was generated, and prints the load time, the store's size on disk and the query's
# p50 and max, and its first run's time (the catalog read in full; later runs use the catalog
# index that run kept beside the store). CI runs a small organisation of the same test. Then, when DynamoDB Local answers
# (scripts/emulators.sh start), the same team's query (its 40 services over 90 days) on
# DynamoDB, printing the Query requests and the items DynamoDB read for them.
#
#   bench/dora.sh [--release] [records]
# The generator is the CLI's test (a debug build); with --release the command timed is a release
# build of `baton` (built first, into target/dora-release), as users run it. BATON_SCALE_TEST
# names another test over the same organisation (bench/dashboard.sh sets it).
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = --release ]; then
    shift
    release_dir=${CARGO_TARGET_DIR:-target}/dora-release
    CARGO_TARGET_DIR=$release_dir cargo build --release -p baton-cli
    export BATON_DORA_BIN=$release_dir/release/baton
fi
BATON_DORA_RECORDS=${1:-1000000} cargo test --workspace --test cli \
    -- --ignored --exact "dora_scale::${BATON_SCALE_TEST:-dora_at_scale}" --nocapture
if [ -n "${BATON_SCALE_TEST:-}" ]; then
    exit 0
fi

# The team timed above: 2,000 services in 50 teams is 40 services, over the 90 days asked for.
eval "$(scripts/emulators.sh env)"
dynamodb=${AWS_ENDPOINT_URL_DYNAMODB#http://}
if ! (exec 3<>"/dev/tcp/${dynamodb%:*}/${dynamodb##*:}") 2>/dev/null; then
    echo "DynamoDB items read: not measured, DynamoDB Local does not answer at $AWS_ENDPOINT_URL_DYNAMODB (scripts/emulators.sh start)"
    exit 0
fi
BATON_DORA_TEAM=40x90 cargo test --workspace --test aws -- --exact \
    emulator::store::a_teams_figures_read_one_query_and_at_most_one_item_a_day_per_service --nocapture
