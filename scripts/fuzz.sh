#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS [NAME...] — runs the libFuzzer targets.
#
# Each target (BUILD_DIR/tests/fuzz/fuzz_<name>, every one built, or only
# the NAMEs given: wire, rules, ...) fuzzes for SECONDS, starting from a
# scratch copy of its seed corpus (tests/fuzz/corpus/<name>/), so that new
# inputs the fuzzer finds never land in the tree. Leak detection is on.
# Exits non-zero if any target crashes, leaks, times out or runs out of
# memory, after running the rest, and keeps each reproducer in
# BUILD_DIR/fuzz-artifacts/<name>/. `make fuzz FUZZ_SECONDS=20` builds the
# targets (clang, build-fuzz) and calls this.
#
# The seed is fixed (FUZZ_SEED, default 1), so a run is repeatable: the same
# tree explores the same inputs, and a green CI run stays green unless the
# code changed. FUZZ_SEED=0 lets libFuzzer pick one, for exploring: run that
# for longer when changing a parser, and add what it finds to the corpus.
set -uo pipefail

build=${1:?usage: fuzz.sh BUILD_DIR SECONDS [NAME...]}
seconds=${2:-30}
shift 2 2>/dev/null || shift $#
root=$(cd "$(dirname "$0")/.." && pwd)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for bin in "$build"/tests/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] && names+=("$(basename "$bin" | sed 's/^fuzz_//')")
  done
fi
if [ ${#names[@]} -eq 0 ]; then
  echo "fuzz: no fuzz_* targets in $build/tests/fuzz (make fuzz builds them with clang)" >&2
  exit 2
fi

scratch=$(mktemp -d /tmp/nerve-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# run_one NAME: fuzzes one target; returns its status.
run_one() {
  local name=$1 bin="$build/tests/fuzz/fuzz_$1" seeds="$root/tests/fuzz/corpus/$1"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is not built (make fuzz builds it with clang)" >&2
    return 2
  fi
  mkdir -p "$scratch/$name/corpus" "$scratch/$name/artifacts"
  [ -d "$seeds" ] && cp "$seeds/"* "$scratch/$name/corpus/" 2>/dev/null
  echo "== fuzz_$name: ${seconds}s"
  local status=0
  "$bin" -max_total_time="$seconds" -seed="${FUZZ_SEED:-1}" -timeout=5 -rss_limit_mb=2048 \
    -detect_leaks=1 \
    -artifact_prefix="$scratch/$name/artifacts/" -print_final_stats=1 \
    "$scratch/$name/corpus" >"$scratch/$name/log" 2>&1 || status=$?
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$scratch/$name/artifacts")" ]; then
    local keep="$build/fuzz-artifacts/$name"
    mkdir -p "$keep"
    cp "$scratch/$name/artifacts/"* "$keep/" 2>/dev/null
    cp "$scratch/$name/log" "$keep/log"
    tail -60 "$scratch/$name/log" >&2
    echo "fuzz: fuzz_$name FAILED (exit $status); reproducers and log in $keep/," \
         "replay one with: $bin FILE" >&2
    return 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$scratch/$name/log" |
    sed 's/^/  /'
  return 0
}

failed=()
for name in "${names[@]}"; do
  run_one "$name" || failed+=("$name")
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ok, ${seconds}s each of ${names[*]} without a crash, leak or timeout"
