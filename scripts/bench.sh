#!/usr/bin/env bash
# Runs the benchmarks built in BUILD_DIR/bench/ (each bench_* executable, in
# name order, or only the NAMEs given) and prints each one's output under a
# header. Used by `make bench`; record the figures in bench/RESULTS.md.
# Exits non-zero if there is no benchmark to run or if any of them fails,
# after running the rest.
#
# bench_manager starts BUILD_DIR/nerve-manager and nerve-publisher itself
# (scratch IPC endpoints in a temp dir) and takes 20–60 s.
set -uo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [NAME...]   (e.g. $0 build-bench bench_manager)" >&2
  exit 2
fi
dir="$1/bench"
shift
if [ ! -d "$dir" ]; then
  echo "bench: no directory $dir (build with: cmake --build ${dir%/bench})" >&2
  exit 1
fi

exes=()
if [ $# -eq 0 ]; then
  for exe in "$dir"/bench_*; do
    [ -f "$exe" ] && [ -x "$exe" ] && exes+=("$exe")
  done
else
  for name in "$@"; do
    exe="$dir/$name"
    if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then
      echo "bench: no benchmark $exe" >&2
      exit 1
    fi
    exes+=("$exe")
  done
fi
if [ ${#exes[@]} -eq 0 ]; then
  echo "bench: no bench_* executables in $dir" >&2
  exit 1
fi

echo "bench: $(uname -srm), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
failed=()
for exe in "${exes[@]}"; do
  name=$(basename "$exe")
  echo
  echo "== $name"
  "$exe"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "bench: $name failed (exit $rc)" >&2
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "bench: failed: ${failed[*]}" >&2
  exit 1
fi
