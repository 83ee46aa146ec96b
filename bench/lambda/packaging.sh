#!/usr/bin/env bash
# The figures of docs/packaging.md: the Lambda functions and the hello-world baseline built with
# cargo lambda for arm64 (zips, as deployed) and for x86-64 (arm64 binaries do not run on this
# host), then the cold-start harness on the x86-64 binaries with the arm64 zip sizes.
#
#   bench/lambda/packaging.sh [--runs N] [--no-build] [-- HARNESS-ARGS...]
#
# HARNESS-ARGS go to coldstart/coldstart.py (e.g. `-- --env SSL_CERT_DIR=/empty`).
#
# Needs `cargo lambda` and zig on PATH (pip install cargo-lambda ziglang). Honours
# CARGO_TARGET_DIR; the lambda dirs are $CARGO_TARGET_DIR/lambda-arm64 and lambda-x86-64.
# The functions measured are those of coldstart/functions.json; builds run under nice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
baseline=hello
harness_runs=()  # the harness's own default unless --runs is given
build=1
while (($#)); do
    case $1 in
        --runs) harness_runs=(--runs "${2:?--runs needs a number}"); shift 2 ;;
        --no-build) build=0; shift ;;
        --) shift; break ;;
        *) echo "usage: $0 [--runs N] [--no-build] [-- HARNESS-ARGS...]" >&2; exit 2 ;;
    esac
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
target=$CARGO_TARGET_DIR

mapfile -t functions < <(python3 -c 'import json, sys; print("\n".join(n for n in json.load(open(sys.argv[1]))["functions"] if n != sys.argv[2]))' \
    "$here/coldstart/functions.json" "$baseline")
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done

if ((build)); then
    # The Lambda builds' Rust flags (scripts/lambda-build.env), for both arches and the baseline alike.
    while IFS='=' read -r name value; do
        [[ $name =~ ^CARGO_TARGET_[A-Z0-9_]+_RUSTFLAGS$ ]] && export "$name=$value"
    done <"$root/scripts/lambda-build.env"
    for arch in arm64 x86-64; do
        flags=(--release "--$arch" --lambda-dir "$target/lambda-$arch")
        [[ $arch == arm64 ]] && flags+=(--output-format zip)
        echo "[packaging.sh] $arch: ${functions[*]}" >&2
        (cd "$root" && time nice -n 10 cargo lambda build "${flags[@]}" "${packages[@]}")
        echo "[packaging.sh] $arch: $baseline" >&2
        (cd "$here/$baseline" && time nice -n 10 cargo lambda build "${flags[@]}")
    done
fi

python3 "$here/coldstart/coldstart.py" --lambda-dir "$target/lambda-x86-64" --zip-dir "$target/lambda-arm64" \
    "${harness_runs[@]}" --baseline "$baseline" "$@" "${functions[@]}"
