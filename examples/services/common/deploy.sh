#!/bin/sh
# Example deploy for Baton's command deploy provider: "installs" the artifact on
# one target by recording it in $BATON_WORKSPACE/targets/<target>/current.
set -eu
: "${BATON_WORKSPACE:?} ${BATON_WAVE:?} ${BATON_TARGET:?} ${BATON_ARTIFACT:?}"
action=deploy
if [ "${BATON_ROLLBACK:-false}" = true ]; then action=rollback; fi
echo "$action: ${BATON_SERVICE:-?} wave $BATON_WAVE target $BATON_TARGET -> $BATON_ARTIFACT"
dir="$BATON_WORKSPACE/targets/$BATON_TARGET"
mkdir -p "$dir"
# Write then rename, so a health check never reads a half-written file.
printf '%s\n' "$BATON_ARTIFACT" > "$dir/current.tmp"
mv "$dir/current.tmp" "$dir/current"
