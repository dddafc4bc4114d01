#!/usr/bin/env bash
# make demo: nerve on this machine, end to end, in a temp directory.
#
# Starts nerve-publisher, nerve-manager, nerve-actor and nerve-beacond with
# the configs in examples/demo/ (IPC endpoints under a fresh $NERVE_HOME, so
# nothing listens on the network and nothing clashes with an install), waits
# until each answers, then follows the bus with `nerve watch`: the load
# probe's events, the rule firing, the reaction sent to this host's actor,
# the command it ran and its result, and the event the rule fired.
#
# Stops everything and removes the directory on Ctrl-C, or after
# DEMO_SECONDS (unset: run until Ctrl-C).
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_TO_RUN=${DEMO_SECONDS:-}

for bin in nerve-manager nerve-publisher nerve-actor nerve-beacond nerve; do
  [ -x "$BUILD/$bin" ] || { echo "demo: $BUILD/$bin is missing: run 'make demo'" >&2; exit 1; }
done

DIR=$(mktemp -d /tmp/nerve-demo.XXXXXX)
chmod 700 "$DIR"
export NERVE_HOME=$DIR
HOST=$(hostname | tr -c 'A-Za-z0-9._:@\n-' '-' | cut -c1-60)
COMMAND=/usr/bin/uptime
[ -x "$COMMAND" ] || COMMAND=/bin/date
PIDS=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_DEMO_DIR:-}" ]; then echo "demo: logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# Configs: the examples with this run's directory, host and command.
mkdir -p "$DIR/rules" "$DIR/run" "$DIR/logs"
chmod 700 "$DIR/run"
for f in manager publisher actor beacond; do
  sed -e "s|@DIR@|$DIR|g" -e "s|@HOST@|$HOST|g" -e "s|@COMMAND@|$COMMAND|g" \
    "$SRC/examples/demo/$f.yaml" >"$DIR/$f.yaml"
done
sed -e "s|@COMMAND@|$COMMAND|g" "$SRC/examples/demo/rules/demo.yaml" >"$DIR/rules/demo.yaml"

start() { # name, then the command
  local name=$1; shift
  "$@" >"$DIR/logs/$name.log" 2>&1 &
  PIDS+=($!)
}

wait_for() { # what, then a command that succeeds when it is ready
  local what=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "demo: $what did not come up; its log:" >&2
  cat "$DIR/logs/$what.log" >&2 || true
  exit 1
}

echo "nerve demo — in $DIR, host '$HOST'"
echo "  beacond sends this host's load every second to the manager;"
echo "  rule 'busy' (avg over 10 s >= 0, OR 'spike' > 4, cooldown 5 s) fires:"
echo "  $COMMAND runs on this host's actor, and /demo/busy is fired."
echo

start publisher "$BUILD/nerve-publisher" -c "$DIR/publisher.yaml"
wait_for publisher test -S "$DIR/run/publisher-control.sock"
start manager "$BUILD/nerve-manager" -c "$DIR/manager.yaml"
wait_for manager "$BUILD/nerve" --timeout 1 rules list
start actor "$BUILD/nerve-actor" -c "$DIR/actor.yaml"
wait_for actor sh -c "'$BUILD/nerve' --timeout 1 actors --json | grep -q '\"$HOST\"'"
start beacond "$BUILD/nerve-beacond" -c "$DIR/beacond.yaml"

echo "── nerve status ──"
"$BUILD/nerve" status || true
echo
echo "── nerve watch (events, reactions, results)${SECONDS_TO_RUN:+ for ${SECONDS_TO_RUN}s}; Ctrl-C stops ──"
if [ -n "$SECONDS_TO_RUN" ]; then
  "$BUILD/nerve" watch --duration "${SECONDS_TO_RUN}s" || true
else
  "$BUILD/nerve" watch || true
fi
echo
echo "── nerve status ──"
"$BUILD/nerve" status || true
