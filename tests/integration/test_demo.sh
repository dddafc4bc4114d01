#!/usr/bin/env bash
# `make demo` in miniature: scripts/demo.sh against this build with
# DEMO_SECONDS=10 must exit 0, show a reaction's result from the actor and
# the event the rule fired, and leave no process or directory behind.
set -euo pipefail
BUILD=${NERVE_BUILD_DIR:?}
SRC=${NERVE_SOURCE_DIR:?}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

DEMO_SECONDS=10 timeout 90 "$SRC/scripts/demo.sh" "$BUILD" >"$out" 2>&1 || {
  echo "demo exited $?:"; cat "$out"; exit 1; }

fail() { echo "FAIL: $1"; echo "--- demo output:"; cat "$out"; exit 1; }
grep -q '/nerve/result/' "$out" || fail "no reaction result"
grep -q 'reactions.cmd.run' "$out" || fail "no cmd.run reaction"
grep -q '"ok":true' "$out" || fail "no successful result"
grep -q '/demo/busy' "$out" || fail "the fired event did not show"
dir=$(sed -n 's/^nerve demo — in \([^,]*\),.*/\1/p' "$out")
[ -n "$dir" ] && [ ! -e "$dir" ] || fail "demo directory '$dir' left behind"
if pgrep -f "$dir/(manager|publisher|actor|beacond).yaml" >/dev/null; then
  fail "demo daemons still running"
fi
echo "1 passed, 0 failed"
