#!/usr/bin/env bash
# Offline checks of the AWS artefacts: the SAM template (sam validate --lint, cfn-lint, and its
# resources' dependency cycles, which neither finds: scripts/template-cycles.py) and
# every state machine definition (asl-validator). Tools are installed into .emulators/ on
# first use. Exits non-zero when any check fails; runs them all either way.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU="$ROOT/.emulators"
VENV="$EMU/tools-venv"
TEMPLATE="$ROOT/infra/template.yaml"
TOOLS_PACKAGES=(aws-sam-cli cfn-lint)
ASL_VALIDATOR_PACKAGE='asl-validator@3'

say() { printf 'static-checks: %s\n' "$*" >&2; }

python_for_tools() {
    if command -v pyenv >/dev/null && [[ -x "$(pyenv root)/versions/3.13.0/bin/python3.13" ]]; then
        echo "$(pyenv root)/versions/3.13.0/bin/python3.13"
    else
        command -v python3
    fi
}

install_tools() {
    if [[ ! -x "$VENV/bin/sam" || ! -x "$VENV/bin/cfn-lint" ]]; then
        say "installing ${TOOLS_PACKAGES[*]} into $VENV"
        "$(python_for_tools)" -m venv "$VENV" || return 1
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS_PACKAGES[@]}" || return 1
    fi
    if [[ ! -x "$EMU/node_modules/.bin/asl-validator" ]]; then
        say "installing $ASL_VALIDATOR_PACKAGE into $EMU"
        mkdir -p "$EMU"
        [[ -f "$EMU/package.json" ]] || echo '{"private": true}' > "$EMU/package.json"
        npm install --prefix "$EMU" --no-audit --no-fund --silent "$ASL_VALIDATOR_PACKAGE" || return 1
    fi
}

failures=0
check() {
    local name="$1"
    shift
    say "$name"
    if "$@"; then
        say "$name: ok"
    else
        say "$name: FAILED"
        failures=$((failures + 1))
    fi
}

install_tools || { say "cannot install the checkers"; exit 1; }

# sam resolves the region and telemetry settings even offline; none of it reaches AWS.
export SAM_CLI_TELEMETRY=0 AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
check "sam validate --lint" "$VENV/bin/sam" validate --lint -t "$TEMPLATE"
check "cfn-lint" "$VENV/bin/cfn-lint" "$TEMPLATE"
check "dependency cycles" "$VENV/bin/python" "$ROOT/scripts/template-cycles.py" "$TEMPLATE"

shopt -s nullglob
definitions=("$ROOT"/statemachines/*.asl.json)
if ((${#definitions[@]} == 0)); then
    say "no statemachines/*.asl.json to validate"
    failures=$((failures + 1))
fi
for definition in "${definitions[@]}"; do
    check "asl-validator ${definition#"$ROOT"/}" "$EMU/node_modules/.bin/asl-validator" --json-path "$definition"
done

if ((failures > 0)); then
    say "$failures check(s) failed"
    exit 1
fi
say "all checks passed"
