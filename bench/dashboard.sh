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
BATON_SCALE_TEST=dashboard_at_scale exec "$(dirname "${BASH_SOURCE[0]}")/dora.sh" "$@"
