#!/usr/bin/env bash
# `baton dora` at scale: generates an organisation (2,000 services in 50 teams, a year of
# releases: 1,000,000 release records by default) in the embedded store's tables, then times
# `baton dora --team T --since 90d --json` run as a user runs it (ten runs), checking its figures
# against what was generated, and prints the load time, the store's size on disk and the query's
# p50 and max. CI runs a small organisation of the same test.
#
#   bench/dora.sh [records]        (BATON_DORA_RECORDS; extra cargo flags in CARGO_FLAGS, say --release)
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BATON_DORA_RECORDS=${1:-1000000} exec cargo test --workspace ${CARGO_FLAGS:-} --test cli \
    -- --ignored --exact dora_scale::dora_at_scale --nocapture
