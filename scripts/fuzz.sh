#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets, catalog_parse included) for N seconds each:
# `scripts/fuzz.sh [seconds-per-target]` (default 60). Nightly Rust and cargo-fuzz only.
#
# Each target starts from its committed seeds (fuzz/corpus/<target>, read only) and grows a working
# corpus under fuzz/target/fuzz-corpus/<target>, so a run never rewrites what is committed. A
# crash, panic, hang (-timeout=10) or memory blow-up (-rss_limit_mb=512) leaves its input under
# fuzz/artifacts/<target>/ and makes the script exit 1. Logs: fuzz/target/fuzz-logs/<target>.log.
#
# FUZZ_SANITIZER (default none): the fuzzed crates deny unsafe code, and AddressSanitizer would
# halve the executions per second and rebuild every dependency; `address` brings it back.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: seconds-per-target must be a whole number, not '$seconds'" >&2; exit 2; }
sanitizer=${FUZZ_SANITIZER:-none}
targets=$(cargo +nightly fuzz list) || exit 2
cargo +nightly fuzz build -s "$sanitizer" || exit 2
mkdir -p target/fuzz-logs

# One libFuzzer stat (-print_final_stats) from a log, or '-'.
stat() { v=$(sed -n "s/^stat::$2: *//p" "$1" | tail -n 1); echo "${v:--}"; }
# A field of the last status line ("#N DONE cov: 123 ft: 456 corp: ..."), or '-'.
status() { awk -v k="$2:" '/ cov: / { for (i = 1; i < NF; i++) if ($i == k) v = $(i + 1) } END { sub(/\/.*/, "", v); print (v == "" ? "-" : v) }' "$1"; }

crashed=()
printf '%-16s %6s %12s %9s %7s %8s %7s %9s %s\n' target seconds runs execs/s cov features corpus peak_rss crashes
for t in $targets; do
    work="target/fuzz-corpus/$t"
    log="target/fuzz-logs/$t.log"
    mkdir -p "$work" "corpus/$t"
    dict=()
    [[ "$t" == asl_* ]] && dict=(-dict=dict/asl.dict)
    cargo +nightly fuzz run -s "$sanitizer" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    crashes=0
    if [ "$rc" -ne 0 ]; then
        crashes=1
        crashed+=("$t: ${artifact:-no artifact written; see fuzz/$log} (log fuzz/$log)")
    fi
    printf '%-16s %6s %12s %9s %7s %8s %7s %7sMB %s\n' "$t" "$seconds" "$(stat "$log" number_of_executed_units)" \
        "$(stat "$log" average_exec_per_sec)" "$(status "$log" cov)" "$(status "$log" ft)" "$(status "$log" corp)" \
        "$(stat "$log" peak_rss_mb)" "$crashes"
done

count=$(wc -w <<<"$targets")
if [ ${#crashed[@]} -gt 0 ]; then
    echo "summary: ${#crashed[@]} of $count target(s) crashed:"
    for c in "${crashed[@]}"; do echo "  $c"; done
    echo "reproduce: cd fuzz && cargo +nightly fuzz run -s $sanitizer <target> <artifact>; minimise with 'cargo +nightly fuzz tmin'"
    exit 1
fi
echo "summary: $count target(s), ${seconds}s each, no crashes"
