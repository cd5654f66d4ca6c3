# shellcheck shell=bash
# Helpers shared by up.sh and down.sh (sourced, not run).

# shellcheck source=tests/cluster/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# Components in start order; down.sh stops them in reverse.
# shellcheck disable=SC2034  # used by the scripts that source this file
TYCHO_COMPONENTS=(etcd minio kube-apiserver kube-controller-manager kube-scheduler kwok)

tycho_log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# tycho_pid <component>: the recorded pid (empty if none).  A pid file holds
# "PID STARTTIME" (see tycho_record_pid); older ones hold just the pid.  Pid
# files live in $TYCHO_PID_DIR (default $TYCHO_CLUSTER_DIR/pids).
tycho_pid() {
  local f="${TYCHO_PID_DIR:-$TYCHO_CLUSTER_DIR/pids}/$1.pid" pid _
  if [[ -s $f ]]; then read -r pid _ <"$f" && printf '%s\n' "$pid"; fi
}

# tycho_proc_stat <pid>: "STATE STARTTIME" of a process (fields 3 and 22 of
# /proc/PID/stat); fails when there is no such process.  The start time (clock
# ticks since boot) never changes across exec and tells a recycled pid apart.
tycho_proc_stat() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n $stat ]] || return 1
  # comm (field 2) is in parentheses and may itself hold spaces or ')'.
  read -r -a fields <<<"${stat##*) }"
  printf '%s %s\n' "${fields[0]}" "${fields[19]}"
}

# tycho_record_pid <component> <pid>: write the pid file atomically (readers
# never see it empty) with the process's start time.  Called right after the
# fork: the start time is known even before the child has exec'd its program
# (its /proc/PID/cmdline may then still be this shell's).  A child that has
# already exited and been reaped gets no start time: it is not alive.
tycho_record_pid() {
  local f="${TYCHO_PID_DIR:-$TYCHO_CLUSTER_DIR/pids}/$1.pid" st start=""
  if st="$(tycho_proc_stat "$2")"; then start="${st#* }"; fi
  printf '%s %s\n' "$2" "$start" >"$f.tmp"
  mv -f "$f.tmp" "$f"
}

# tycho_free_ports <n> [address]: n distinct TCP ports free on the address
# (default 0.0.0.0: free on every address), on one line.  Taken below the
# ephemeral range (net.ipv4.ip_local_port_range) where the kernel never picks
# a port by itself, so neither a bind(0) elsewhere nor the source port of an
# outgoing connection can take one before the daemon that gets it binds it.
tycho_free_ports() {
  python3 - "$1" "${2:-0.0.0.0}" <<'PY'
import random, socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
try:
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
except OSError:
    lo, hi = 32768, 60999
pool = list(range(max(1024, lo - 12000), lo)) if lo > 2048 else list(range(hi + 1, 65536))
random.shuffle(pool)
ports = []
for port in pool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            continue
    ports.append(port)
    if len(ports) == n:
        break
if len(ports) < n:
    sys.exit("tycho_free_ports: not enough free ports below the ephemeral range")
print(" ".join(map(str, ports)))
PY
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

# tycho_alive <component>: the recorded process is running (not a zombie) AND
# is ours: it has the start time recorded when it was started, so a recycled
# pid belonging to an unrelated process never counts (we never kill those).
# No pipes (a `... | grep -q` under pipefail fails when grep exits first and
# the writer gets SIGPIPE) and no reading of /proc/PID/cmdline (just after the
# fork it is still the parent shell's).
tycho_alive() {
  local f="${TYCHO_PID_DIR:-$TYCHO_CLUSTER_DIR/pids}/$1.pid" pid start st cmdline
  [[ -s $f ]] || return 1
  read -r pid start <"$f" || [[ -n ${pid:-} ]] || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  st="$(tycho_proc_stat "$pid")" || return 1
  [[ ${st%% *} != Z && ${st%% *} != X ]] || return 1
  # (No bare `return` here: inside a trap handler, such as up.sh's on_error,
  # it would return the status of the command that fired the trap.)
  if [[ -n ${start:-} ]]; then
    [[ ${st#* } == "$start" ]] && return 0
    return 1
  fi
  # A pid file from before start times were recorded: its command line must
  # mention the state dir.
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ $cmdline == *"$TYCHO_CLUSTER_DIR"* ]]
}

# tycho_gone <pid> <starttime>: that process has exited (or is a zombie
# awaiting its reaper, or the pid now belongs to another process).
tycho_gone() {
  local st
  st="$(tycho_proc_stat "$1")" || return 0
  [[ ${st%% *} == Z || ${st%% *} == X || ${st#* } != "$2" ]]
}
