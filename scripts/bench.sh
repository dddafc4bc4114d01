#!/usr/bin/env bash
# Runs every benchmark built in BUILD_DIR/bench/ (each bench_* executable,
# in name order) and prints its output under a header. Used by `make bench`;
# record the figures in bench/RESULTS.md. Exits non-zero if there is no
# benchmark or if any of them fails, after running the rest.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
dir="$1/bench"
if [ ! -d "$dir" ]; then
  echo "bench: no directory $dir (build with: cmake --build $1)" >&2
  exit 1
fi

echo "bench: $(uname -srm), $(nproc) cpus, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
ran=0
failed=()
for exe in "$dir"/bench_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  name=$(basename "$exe")
  echo
  echo "== $name"
  "$exe"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "bench: $name failed (exit $rc)" >&2
    failed+=("$name")
  fi
  ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
  echo "bench: no bench_* executables in $dir" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
