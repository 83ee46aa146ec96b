#!/bin/sh
# Example build for Baton's command build provider: "builds" an artifact file in
# $BATON_WORKSPACE and prints its reference as the last line of stdout.
set -eu
: "${BATON_SERVICE:?} ${BATON_RELEASE_ID:?} ${BATON_BRANCH:?} ${BATON_WORKSPACE:?}"
# Set EXAMPLE_BUILD_FAILS in baton's environment to watch a build fail: hello-web's catalog
# passes it to the build (`pass-env`), since commands inherit only what the catalog names.
if [ -n "${EXAMPLE_BUILD_FAILS:-}" ]; then
  echo "build: failing on purpose (EXAMPLE_BUILD_FAILS is set)" >&2
  exit 1
fi
version=${BATON_SHA:-$BATON_RELEASE_ID}
artifact="$BATON_SERVICE@$version"
echo "build: $BATON_SERVICE for ${BATON_ENVIRONMENT:-?} from $BATON_BRANCH@${BATON_SHA:-HEAD} -> $artifact" >&2
mkdir -p "$BATON_WORKSPACE/artifacts"
printf '%s built for release %s\n' "$artifact" "$BATON_RELEASE_ID" > "$BATON_WORKSPACE/artifacts/$BATON_SERVICE-$version"
echo "$artifact"
