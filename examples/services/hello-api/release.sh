#!/bin/sh
# What hello-api's release.yml workflow runs, played by github-stand-in: on GitHub its job
# would build and push ghcr.io/acme/hello-api:<short sha>; here it checks what the run was given
# and says what it would push. The dispatch's inputs arrive as INPUT_<NAME>, the run's facts as
# a runner's GITHUB_* variables.
set -eu
: "${INPUT_BATON_RELEASE_ID:?} ${GITHUB_SHA:?} ${GITHUB_REF_NAME:?} ${GITHUB_RUN_ID:?}"
# Set EXAMPLE_BUILD_FAILS in the stand-in's environment to watch the run, and the release, fail.
if [ -n "${EXAMPLE_BUILD_FAILS:-}" ]; then
  echo "release.yml: failing on purpose (EXAMPLE_BUILD_FAILS is set)" >&2
  exit 1
fi
short_sha=$(printf '%.7s' "$GITHUB_SHA")
echo "release.yml: run $GITHUB_RUN_ID builds $GITHUB_REF_NAME@$GITHUB_SHA (baton_sha '${INPUT_BATON_SHA:-}') for release $INPUT_BATON_RELEASE_ID"
echo "release.yml: pushed ghcr.io/acme/hello-api:$short_sha"
