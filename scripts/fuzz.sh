#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS — runs the wire codec's libFuzzer target.
#
# Copies the seed corpus (tests/fuzz/corpus) to a scratch directory, so new
# inputs the fuzzer finds never land in the tree, and fuzzes for SECONDS
# with leak detection on. Exits non-zero on any crash, leak, timeout or
# out-of-memory, and keeps the reproducer in BUILD_DIR/fuzz-artifacts/.
# `make fuzz FUZZ_SECONDS=20` builds the target (clang, build-fuzz) and
# calls this.
set -euo pipefail

build=${1:?usage: fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$build/tests/fuzz/fuzz_wire"
if [ ! -x "$bin" ]; then
  echo "fuzz: $bin is not built (make fuzz builds it with clang)" >&2
  exit 2
fi

scratch=$(mktemp -d /tmp/nerve-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/corpus" "$scratch/artifacts"
cp "$root/tests/fuzz/corpus/"* "$scratch/corpus/"

export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

status=0
"$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -detect_leaks=1 \
  -artifact_prefix="$scratch/artifacts/" -print_final_stats=1 "$scratch/corpus" || status=$?

if [ "$status" -ne 0 ] || [ -n "$(ls -A "$scratch/artifacts")" ]; then
  keep="$build/fuzz-artifacts"
  mkdir -p "$keep"
  cp "$scratch/artifacts/"* "$keep/" 2>/dev/null || true
  echo "fuzz: FAILED (exit $status); reproducers in $keep/, replay one with: $bin FILE" >&2
  [ "$status" -ne 0 ] && exit "$status"
  exit 1
fi
echo "fuzz: ok, ${seconds}s of fuzz_wire without a crash, leak or timeout"
