#!/bin/sh
# flaky-api's health check: the common check, except that the second wave
# (`one-region` in examples/catalog/flaky-api.yaml) always fails, so every
# release of flaky-api rolls back. That is the example's purpose.
set -eu
: "${BATON_WAVE:?}"
if [ "$BATON_WAVE" = one-region ]; then
    echo "health: flaky-api fails wave $BATON_WAVE on purpose (example of a rollback)" >&2
    exit 1
fi
exec sh ../common/health.sh
