#!/usr/bin/env bash
# Baton's ASL executor and the peer interpreters (../shared/peers) on the same definitions, in one sitting.
#
#   bench/peers.sh [--quick]     JSON lines on stdout: baton-asl first, then the peers (run-all.sh);
#                                then the side-by-side table (bench/peers_table.py) on stderr
#
# Builds the bench in release mode (CARGO_TARGET_DIR is honoured). --quick: N=100, map1000 x3, on both sides.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peers=${SHARED_DIR:-$here/../shared}/peers
quick=()
case "${1:-}" in
    --quick) quick=(--quick) ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
echo "[peers.sh] baton-asl (release, in-process, virtual waits, each definition in its own process)" >&2
(cd "$here" && cargo bench -q -p baton-asl --bench peers -- --suite "$peers/defs" "${quick[@]}") | tee "$lines"
echo "[peers.sh] peers: run-all.sh ${quick[*]}" >&2
bash "$peers/run-all.sh" "${quick[@]}" | tee -a "$lines"
python3 "$here/bench/peers_table.py" <"$lines" >&2
