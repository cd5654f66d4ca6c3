#!/usr/bin/env bash
# Start and stop the test control plane N times in a row (default 20) and count
# the cycles that fail: up.sh must come up healthy every time, down.sh must
# leave no process and no state behind (with TYCHO_REAL_NODE=1: nor anything of
# the real node).  A check for races in up.sh, down.sh, node.sh and lib.sh (a
# flaky start shows up as a failed cycle with its log).
#
#   bash tests/cluster/soak.sh [N]
#
# Uses its own state dir (a temp dir; TYCHO_CLUSTER_DIR is ignored), so a
# cluster already running from this checkout is left alone.  Exit status 0
# only when every cycle passed.  Env: TYCHO_REAL_NODE is passed through.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
N="${1:-20}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tycho-soak.XXXXXX")"
export TYCHO_CLUSTER_DIR="$WORK/cluster"
# shellcheck source=tests/cluster/env.sh
source "$HERE/env.sh"
KUBECTL="$TYCHO_BIN_K8S/kubectl"

cleanup() { bash "$HERE/down.sh" >/dev/null 2>&1 || true; }
trap cleanup EXIT

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
leftovers() { # processes whose command line still names the state dir
  local p out=()
  for p in /proc/[0-9]*; do
    [[ -r $p/cmdline ]] || continue
    [[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *"$TYCHO_CLUSTER_DIR"* ]] && out+=("${p#/proc/}")
  done
  printf '%s\n' "${out[@]}"
}

passed=0
ups=()
downs=()
for (( i=1; i<=N; i++ )); do
  ok=1
  t0=$SECONDS
  if ! bash "$HERE/up.sh" >"$WORK/up-$i.log" 2>&1; then
    ok=0
    log "cycle $i: up.sh FAILED; last lines of $WORK/up-$i.log:"
    tail -n 20 "$WORK/up-$i.log" | sed 's/^/    /'
  elif ! "$KUBECTL" --kubeconfig "$TYCHO_CLUSTER_DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    ok=0
    log "cycle $i: up.sh succeeded but the API server is not ready"
  fi
  t1=$SECONDS
  if ! bash "$HERE/down.sh" >"$WORK/down-$i.log" 2>&1; then
    ok=0
    log "cycle $i: down.sh FAILED:"
    tail -n 20 "$WORK/down-$i.log" | sed 's/^/    /'
  fi
  t2=$SECONDS
  left="$(leftovers)"
  if [[ -n $left ]]; then
    ok=0
    log "cycle $i: processes left running after down.sh: $(echo "$left" | tr '\n' ' ')"
  fi
  if [[ ${TYCHO_REAL_NODE:-0} == 1 ]]; then
    node_left=()
    for p in /var/lib/tycho-node /var/lib/kubelet /var/log/pods /run/tycho-node /sys/fs/cgroup/pids/kubepods; do
      [[ -e $p ]] && node_left+=("$p")
    done
    grep -q ' /var/lib/kubelet' /proc/self/mountinfo && node_left+=("mounts under /var/lib/kubelet")
    ip link show tycho0 >/dev/null 2>&1 && node_left+=("bridge tycho0")
    if (( ${#node_left[@]} )); then
      ok=0
      log "cycle $i: the real node left behind: ${node_left[*]}"
    fi
  fi
  if [[ -e $TYCHO_CLUSTER_DIR ]]; then
    ok=0
    log "cycle $i: down.sh left $TYCHO_CLUSTER_DIR behind"
    rm -rf -- "$TYCHO_CLUSTER_DIR"
  fi
  ups+=($((t1 - t0)))
  downs+=($((t2 - t1)))
  if (( ok )); then
    passed=$((passed + 1))
    log "cycle $i/$N: ok (up ${ups[-1]}s, down ${downs[-1]}s)"
  fi
done

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %ds, median %ds, max %ds", a[1], a[int((NR+1)/2)], a[NR]}'; }
log "result: $passed/$N cycles passed; up.sh $(stats "${ups[@]}"); down.sh $(stats "${downs[@]}")"
if (( passed == N )); then rm -rf -- "$WORK"; else log "logs kept in $WORK"; fi
(( passed == N ))
