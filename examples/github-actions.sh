#!/bin/sh
# Releases examples/catalog's hello-api, whose build runs on GitHub Actions, with no network:
# starts github-stand-in (GitHub's REST API on 127.0.0.1:8714, running the workflow as
# examples/services/hello-api/release.sh), runs `baton release hello-api`, and stops the
# stand-in whatever happens. Exits with the release's exit code. Arguments go to
# `baton release` (--no-wait, --json, --sha S, --state-dir DIR). EXAMPLE_BUILD_FAILS=1 makes
# the workflow fail.
#
#   examples/github-actions.sh [--no-wait] [--sha S] ...
set -eu
cd "$(dirname "$0")/.."

# A made-up token: the catalog references it (env:HELLO_API_GITHUB_TOKEN) and the stand-in
# accepts only it.
HELLO_API_GITHUB_TOKEN=${HELLO_API_GITHUB_TOKEN:-stand-in-token-for-hello-api}
export HELLO_API_GITHUB_TOKEN

cargo build --quiet -p baton-github-stand-in -p baton-cli
target=${CARGO_TARGET_DIR:-target}

url_file=$(mktemp)
GITHUB_STAND_IN_TOKEN=$HELLO_API_GITHUB_TOKEN "$target/debug/github-stand-in" \
    --repository acme/hello-api --workflow release.yml=examples/services/hello-api/release.sh >"$url_file" &
stand_in=$!
stop() { kill "$stand_in" 2>/dev/null || true; rm -f "$url_file"; }
trap stop EXIT
trap 'exit 130' INT TERM

# It prints its URL once it listens (or exits: a port in use).
while [ ! -s "$url_file" ]; do
    kill -0 "$stand_in" 2>/dev/null || { echo "github-actions.sh: github-stand-in did not start" >&2; exit 2; }
    sleep 0.1
done
echo "github-stand-in: $(cat "$url_file")" >&2

status=0
"$target/debug/baton" release hello-api --catalog examples/catalog "$@" || status=$?
exit "$status"
