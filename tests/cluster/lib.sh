# shellcheck shell=bash
# Helpers shared by up.sh and down.sh (sourced, not run).

# shellcheck source=tests/cluster/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Components in start order; down.sh stops them in reverse.
# shellcheck disable=SC2034  # used by the scripts that source this file
TYCHO_COMPONENTS=(etcd minio kube-apiserver kube-controller-manager kube-scheduler kwok)

tycho_log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# tycho_pid <component>: the recorded pid (empty if none).
tycho_pid() {
  local f="$TYCHO_CLUSTER_DIR/pids/$1.pid"
  if [[ -s $f ]]; then cat "$f"; fi
}

# tycho_lock: serialise up.sh/down.sh on one state dir, so a second up.sh
# (e.g. another test session) waits for the first and then finds the cluster
# running instead of racing it.  The lock file lives outside the state dir
# because down.sh deletes that.  up.sh runs down.sh with TYCHO_CLUSTER_LOCKED=1
# (it already holds the lock).  Daemons must not inherit fd 8 (see up.sh).
tycho_lock() {
  [[ ${TYCHO_CLUSTER_LOCKED:-0} == 1 ]] && return 0
  local key
  key="$(printf '%s' "$TYCHO_CLUSTER_DIR" | md5sum | cut -c1-12)"
  exec 8>"${TMPDIR:-/tmp}/tycho-cluster-$key.lock"
  if ! flock -w "${TYCHO_LOCK_TIMEOUT:-300}" 8; then
    echo "timed out waiting for another up.sh/down.sh on $TYCHO_CLUSTER_DIR" >&2
    return 1
  fi
  export TYCHO_CLUSTER_LOCKED=1
}

# tycho_alive <component>: the recorded process is running AND is ours.
# Checking that its command line mentions the state dir guards against a
# recycled pid belonging to an unrelated process (we never kill those).
tycho_alive() {
  local pid; pid="$(tycho_pid "$1")"
  [[ -n $pid ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$TYCHO_CLUSTER_DIR"
}
