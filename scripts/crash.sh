#!/bin/sh
# Crash campaigns against the local runner. Each prints its figures.
#   scripts/crash.sh [kills]        SIGKILLs `baton release` of the example service at every stage
#                                   boundary and at random moments, each next release picking the
#                                   killed one up; checks every record is closed, no lock is held and
#                                   every target runs the artifact its record says (default 40;
#                                   BATON_CRASH_SEED=<n> replays a campaign).
#   scripts/crash.sh ops [rounds]   kills inside builds, deploys, bakes and rollbacks, SIGTERM and
#                                   SIGINT inside rollbacks, of a service whose commands log what
#                                   they did; checks the records against that log (default 5 rounds
#                                   of six stops).
#   scripts/crash.sh race [runs]    `baton resume`, `baton cancel` and a new `baton release` started
#                                   together on one killed release: exactly one process runs it, no
#                                   history event written twice (default 200 runs).
# Short fixed versions run in `cargo test --workspace` (cli/tests/cli/crash.rs, cli/tests/cli/ownership.rs).
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
    ops)
        BATON_OPS_ROUNDS=${2:-5} exec cargo test --workspace --test cli -- --ignored --exact crash::ops_crash_campaign --nocapture ;;
    race)
        BATON_RACE_RUNS=${2:-200} exec cargo test --workspace --test cli -- --exact \
            ownership::resume_cancel_and_a_new_release_racing_for_a_killed_release_leave_it_to_one_process --nocapture ;;
    *)
        BATON_CRASH_KILLS=${1:-40} exec cargo test --workspace --test cli -- --ignored --exact crash::crash_campaign --nocapture ;;
esac
