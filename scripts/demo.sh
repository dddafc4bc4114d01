#!/usr/bin/env bash
# make demo: starts nerve on this machine and shows the bus. Filled in as
# the daemons land; for now it runs what exists.
set -euo pipefail
BUILD=${1:-build}
echo "nerve demo: built into $BUILD"
ls "$BUILD"/modules/* 2>/dev/null || true
