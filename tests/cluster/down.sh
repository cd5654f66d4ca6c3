#!/usr/bin/env bash
# Stop the local test cluster started by tests/cluster/up.sh and delete its
# state directory (.cluster/ at the repo root).  Safe to run when nothing is
# running.  Only processes recorded in .cluster/pids/ whose command line
# points at this state dir are signalled.
set -euo pipefail

# shellcheck source=tests/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
S="$TYCHO_CLUSTER_DIR"
tycho_lock

if [[ ! -e $S ]]; then
  tycho_log "no cluster state at $S: nothing to stop"
  exit 0
fi
# Refuse to rm -rf a directory up.sh did not create (e.g. a mistyped
# TYCHO_CLUSTER_DIR).
if [[ ! -f $S/.tycho-cluster ]]; then
  echo "down.sh: $S has no .tycho-cluster marker; not touching it" >&2
  exit 1
fi

# Stop in reverse start order: clients before the apiserver, etcd last, so
# nothing logs a storm of connection errors while shutting down.
pids=()
for (( i=${#TYCHO_COMPONENTS[@]}-1; i>=0; i-- )); do
  c="${TYCHO_COMPONENTS[$i]}"
  if tycho_alive "$c"; then
    pid="$(tycho_pid "$c")"
    tycho_log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
done

# Give them up to 15 s to exit cleanly, then SIGKILL the stragglers.
deadline=$((SECONDS + 15))
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    tycho_log "pid $pid did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done

rm -rf -- "$S"
tycho_log "cluster stopped; removed $S"
