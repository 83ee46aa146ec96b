#!/usr/bin/env bash
# The load test: 1,000 signals for 200 services in one burst on the embedded run (the real
# definition and handlers, the SQLite store, command providers; bakes skipped, waits at a
# hundredth of their length), duplicates included. It checks that each (service, commit) was
# released once, one release at a time per service, the newest signal of each service last,
# and prints the burst's time and the process's peak RSS:
#
#   load: 1000 signals for 200 services -> 600 releases (207 shipped, 393 superseded) in 10.2 s; peak RSS 158 MiB
#
# CI runs a small burst of the same test (60 signals, 12 services) with the rest of the suite.
# Extra arguments go to cargo (say, CARGO_TARGET_DIR in the environment, or --release).
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec cargo test --workspace "$@" --test e2e \
    -- --ignored --nocapture --exact load::a_burst_of_1000_signals_for_200_services
