#!/usr/bin/env bash
# Baton's ASL executor and the peer interpreters (../shared/peers) on the same definitions, in one sitting.
#
#   bench/peers.sh [--quick]     JSON lines on stdout: baton-asl first, then the peers (run-all.sh)
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

echo "[peers.sh] baton-asl (release, in-process, virtual waits)" >&2
(cd "$here" && cargo bench -q -p baton-asl --bench peers -- --suite "$peers/defs" "${quick[@]}")
echo "[peers.sh] peers: run-all.sh ${quick[*]}" >&2
bash "$peers/run-all.sh" "${quick[@]}"
