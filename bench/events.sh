#!/usr/bin/env bash
# Event-driven waits against polling (issue 29): issue 29's standard release (a 20-minute build,
# 3 waves of 5-minute rollouts, 10-minute bakes sampled every 30 s, CloudWatch-alarm gates) run
# twice by the real release definition on the embedded executor, once parked on its providers'
# events (`events: {wait: true, safety-net: 5m}`) and once polled as before (`wait: false`).
# Stand-in providers take their expected time and emit their events in-process. Time runs 600
# times faster than the wall clock (Clock::Scaled: the virtual clock cannot take an answer from
# outside at a virtual instant). Prints state transitions (in all, and per wave), Lambda
# invocations, provider API calls, and the time from each event to the release's next call to
# that provider on the real clock, with the issue's targets.
#
#   bench/events.sh
set -euo pipefail
cd "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo test --workspace --test e2e -- --ignored --exact events::bench_standard_release_events_against_polling --nocapture \
    2>&1 | grep -v '^running\|^test \|^$\|test result'
