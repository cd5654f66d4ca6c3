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

# The real node first (node.sh), while the API server is there to let kubelet
# stop its pods; it also undoes what kubelet and containerd changed on the host.
if [[ -f $S/node.env || $(cat /var/lib/tycho-node/owner 2>/dev/null) == "$S" ]]; then
  bash "$(dirname "${BASH_SOURCE[0]}")/node.sh" down || tycho_log "WARNING: stopping the real node failed"
fi

# Stop in reverse start order: clients before the apiserver, etcd last, so
# nothing logs a storm of connection errors while shutting down.
procs=()   # "pid starttime" of each process signalled
for (( i=${#TYCHO_COMPONENTS[@]}-1; i>=0; i-- )); do
  c="${TYCHO_COMPONENTS[$i]}"
  if tycho_alive "$c"; then
    pid="$(tycho_pid "$c")"
    st="$(tycho_proc_stat "$pid")" || continue
    tycho_log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    procs+=("$pid ${st#* }")
  fi
done

# Give them up to 15 s to exit cleanly, then SIGKILL the stragglers (and wait
# for them: nothing may still write into the state dir when it is deleted).
deadline=$((SECONDS + 15))
for p in "${procs[@]}"; do
  read -r pid start <<<"$p"
  while ! tycho_gone "$pid" "$start" && (( SECONDS < deadline )); do sleep 0.2; done
  if ! tycho_gone "$pid" "$start"; then
    tycho_log "pid $pid did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in {1..50}; do tycho_gone "$pid" "$start" && break; sleep 0.1; done
  fi
done

rm -rf -- "$S"
tycho_log "cluster stopped; removed $S"
