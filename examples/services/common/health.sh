#!/bin/sh
# Example health check for Baton's command health provider: healthy when every
# target of the wave runs the release's artifact.
set -eu
: "${BATON_WORKSPACE:?} ${BATON_WAVE:?} ${BATON_TARGETS:?} ${BATON_ARTIFACT:?}"
echo "health: ${BATON_SERVICE:-?} wave $BATON_WAVE targets $BATON_TARGETS expect $BATON_ARTIFACT"
unhealthy=0
set -f  # target names are not globs
old_ifs=$IFS
IFS=,
for target in $BATON_TARGETS; do
    current=$(cat "$BATON_WORKSPACE/targets/$target/current" 2>/dev/null || echo "nothing")
    if [ "$current" != "$BATON_ARTIFACT" ]; then
        echo "health: $target runs $current, not $BATON_ARTIFACT" >&2
        unhealthy=1
    fi
done
IFS=$old_ifs
exit "$unhealthy"
