#!/usr/bin/env bash
# ASL conformance: runs the AWS-recorded cases in ../shared/conformance against a built baton binary.
# Usage: .ci/conformance.sh path/to/baton   (builds nothing; exits non-zero below 98 %)
set -euo pipefail

baton=${1:?usage: $0 path/to/baton}
[[ -x $baton ]] || { echo "conformance: $baton is not an executable" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED_DIR:-$here/../shared}
threshold=${ASL_CONFORMANCE_MIN:-98.0}

report=$(mktemp)
trap 'rm -f "$report"' EXIT
# run.py exits 1 whenever any case fails; the threshold below decides.
python3 "$shared/conformance/run.py" --cases "$shared/conformance/cases" -j 2 -q \
    --log "${ASL_CONFORMANCE_LOG:-/tmp/asl-conformance-failures.log}" \
    --cmd "$(printf '%q' "$baton") asl run {definition} --input {input} --virtual-time" >"$report" || true
cat "$report"

rate=$(sed -n 's/^TOTAL: [0-9]*\/[0-9]* passed (\([0-9.]*\)%).*/\1/p' "$report")
[[ -n $rate ]] || { echo "conformance: no TOTAL line in run.py's report" >&2; exit 1; }
if awk -v r="$rate" -v t="$threshold" 'BEGIN { exit !(r < t) }'; then
    echo "conformance: ${rate}% is below ${threshold}%" >&2
    exit 1
fi
echo "conformance: ${rate}% (threshold ${threshold}%)"
