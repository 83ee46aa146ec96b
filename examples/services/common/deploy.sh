#!/bin/sh
# Example deploy for Baton's command deploy provider: "installs" the artifact on
# one target by recording it in $BATON_WORKSPACE/targets/<target>/current.
# A rollback with an empty BATON_ARTIFACT means nothing was live before this
# release: the target is emptied.
set -eu
: "${BATON_WORKSPACE:?} ${BATON_WAVE:?} ${BATON_TARGET:?}"
artifact="${BATON_ARTIFACT:-}"
action=deploy
if [ "${BATON_ROLLBACK:-false}" = true ]; then action=rollback; fi
dir="$BATON_WORKSPACE/targets/$BATON_TARGET"
mkdir -p "$dir"
if [ -z "$artifact" ]; then
    if [ "$action" = deploy ]; then
        echo "deploy: no artifact given for $BATON_TARGET" >&2
        exit 2
    fi
    echo "rollback: ${BATON_SERVICE:-?} wave $BATON_WAVE target $BATON_TARGET -> (nothing was live before; removing)"
    rm -f "$dir/current"
    exit 0
fi
echo "$action: ${BATON_SERVICE:-?} wave $BATON_WAVE target $BATON_TARGET -> $artifact"
# Write then rename, so a health check never reads a half-written file.
printf '%s\n' "$artifact" > "$dir/current.tmp"
mv "$dir/current.tmp" "$dir/current"
