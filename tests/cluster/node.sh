#!/usr/bin/env bash
# A real Kubernetes node beside the kwok nodes of the test cluster: kubelet
# (built from the same k8s.io/kubernetes version as the control plane),
# Debian's containerd and CNI plugins (bridge + host-local).
#
#   bash tests/cluster/node.sh up            # join the running cluster (up.sh does when TYCHO_REAL_NODE=1)
#   bash tests/cluster/node.sh load IMAGE... # copy images from podman (or $DOCKER) into the node's containerd
#   bash tests/cluster/node.sh down          # stop it and undo what kubelet/containerd changed (down.sh does)
#   bash tests/cluster/node.sh status
#
# Pods reach it by nodeSelector tycho.dev/real-node=true and a toleration of the
# taint tycho.dev/real-node=true:NoSchedule (untolerating pods stay on the kwok
# nodes); images come from `load` and need imagePullPolicy: Never (no registry).
# $TYCHO_CLUSTER_DIR/node.env has the node's name, IP, pod gateway and the
# MinIO endpoint pods reach (TYCHO_NODE_S3_ENDPOINT).
#
# One real node per machine: kubelet and containerd change machine-wide state
# (sysctls, cgroups, mounts, /var/lib/kubelet, /var/log/pods, /var/lib/cni, a
# bridge).  `down` restores or removes all of it, also after a crash; the
# node's records live in /var/lib/tycho-node.  Imported images persist in
# $TYCHO_CACHE/containerd (a cache: a second `load` of the same image is
# instant); `node.sh purge` deletes it.  Needs root.
#
# Env: TYCHO_NODE_NAME (tycho-node), TYCHO_NODE_POD_CIDR (10.213.0.0/24: not
# podman's 10.88.0.0/16 nor its 10.89.x.0/24 networks), TYCHO_NODE_IP (the
# address of the default route), TYCHO_UP_TIMEOUT (90).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/cluster/lib.sh
source "$HERE/lib.sh"
S="$TYCHO_CLUSTER_DIR"
NODE_NAME="${TYCHO_NODE_NAME:-tycho-node}"
POD_CIDR="${TYCHO_NODE_POD_CIDR:-10.213.0.0/24}"
TIMEOUT="${TYCHO_UP_TIMEOUT:-90}"
BRIDGE=tycho0
CNI_NET=tycho
LABEL_KEY=tycho.dev/real-node
NODE_DIR=/var/lib/tycho-node            # records, config, certs, logs, pids
RUN_DIR=/run/tycho-node                 # containerd state, its socket, runc state
CTRD_ROOT="$TYCHO_CACHE/containerd"     # images (kept between runs)
SOCK="$RUN_DIR/containerd.sock"
KUBELET_ROOT=/var/lib/kubelet
POD_LOGS=/var/log/pods
CONTAINER_LOGS=/var/log/containers
CNI_STATE=/var/lib/cni
SHIM_SOCKETS=/run/containerd            # containerd 1.6 puts shim sockets in /run/containerd/s
PAUSE_IMAGE="localhost/tycho/pause:$TYCHO_PAUSE_VERSION"
KUBELET="$TYCHO_BIN_K8S/kubelet"
KUBECTL="$TYCHO_BIN_K8S/kubectl"
# What kubelet sets at start (vm.*, kernel.*) and the bridge plugin (ip_forward).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
export TYCHO_PID_DIR="$NODE_DIR/pids"

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { echo "node.sh: $*" >&2; exit 1; }
kc() { "$KUBECTL" --kubeconfig "$S/kubeconfig" --request-timeout=10s "$@"; }
ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

node_lock() {
  exec 7>/run/tycho-node.lock
  flock -w 600 7 || die "timed out waiting for another node.sh"
}

# ---------------------------------------------------------------------------
# down: stop, then undo everything (each step tolerates what is already gone)
# ---------------------------------------------------------------------------
stop_component() { # <name>: TERM, wait up to 20 s, KILL
  local pid st start
  tycho_alive "$1" || return 0
  pid="$(tycho_pid "$1")"
  st="$(tycho_proc_stat "$pid")" || return 0
  start="${st#* }"
  log "stopping $1 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..100}; do tycho_gone "$pid" "$start" && return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  for _ in {1..50}; do tycho_gone "$pid" "$start" && return 0; sleep 0.1; done
}

# Pids of the processes in the node's pod cgroups (the containers) and of the
# containerd shims serving our socket: ours by construction.
node_processes() {
  local f p
  for f in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/memory/kubepods; do
    if [[ -d $f ]]; then find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null; fi
  done
  for p in /proc/[0-9]*; do
    if [[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *containerd-shim*"-address $SOCK "* ]]; then echo "${p#/proc/}"; fi
  done
  return 0
}

other_containerd() { # another containerd (not a zombie) may use /run/containerd
  local p st
  for p in /proc/[0-9]*; do
    [[ $(cat "$p/comm" 2>/dev/null) == containerd ]] || continue
    st="$(tycho_proc_stat "${p#/proc/}")" || continue
    [[ ${st%% *} == Z ]] || return 0
  done
  return 1
}

unmount_under() { # <dir>...: every mount point at or below the dirs, deepest first
  local d m
  for d in "$@"; do
    awk '{print $5}' /proc/self/mountinfo | while read -r m; do
      m="$(printf '%b' "$m")"   # mountinfo escapes spaces as \040
      if [[ $m == "$d" || $m == "$d"/* ]]; then echo "$m"; fi
    done
  done | sort -r -u | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

node_down() {
  # Best effort to the end: a step that fails must not keep the next ones from running.
  set +e
  [[ -d $NODE_DIR ]] || { log "no real node on this machine: nothing to stop"; rm -f "$S/node.env"; return 0; }
  local owner="" kubeconfig
  [[ -f $NODE_DIR/owner ]] && owner="$(cat "$NODE_DIR/owner")"
  kubeconfig="${owner:-$S}/kubeconfig"
  # 1. Let kubelet stop the pods (CNI teardown, log files) while the API server is there.
  if tycho_alive kubelet && [[ -f $kubeconfig ]] &&
     "$KUBECTL" --kubeconfig "$kubeconfig" --request-timeout=5s get node "$NODE_NAME" >/dev/null 2>&1; then
    log "deleting the pods on $NODE_NAME"
    "$KUBECTL" --kubeconfig "$kubeconfig" delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
      --grace-period=5 --wait=true --timeout=60s >/dev/null 2>&1 || log "pods did not all go in 60 s; forcing"
    "$KUBECTL" --kubeconfig "$kubeconfig" delete node "$NODE_NAME" --wait=false >/dev/null 2>&1 || true
  fi
  stop_component kubelet
  # 2. Whatever containers are left (a crash, a stuck pod): kill their tasks.
  if tycho_alive containerd; then
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do
      ctr_ tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true
      ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
  fi
  stop_component containerd
  local pids
  mapfile -t pids < <(node_processes | sort -u)
  if (( ${#pids[@]} )); then
    log "killing ${#pids[@]} leftover container/shim processes"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
  fi
  # 3. Mounts: kubelet's bind mount of its root, volumes, rootfs overlays, netns.
  local before_ns=""
  [[ -f $NODE_DIR/netns.before ]] && before_ns="$(cat "$NODE_DIR/netns.before")"
  local ns
  for ns in /run/netns/cni-* /var/run/netns/cni-*; do
    [[ -e $ns ]] || continue
    grep -qxF -- "$(basename "$ns")" <<<"$before_ns" && continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f -- "$ns"
  done
  unmount_under "$KUBELET_ROOT" "$RUN_DIR" "$CTRD_ROOT"
  # 4. Files and directories kubelet, containerd and CNI created.
  rm -rf -- "$KUBELET_ROOT" "$POD_LOGS" "$RUN_DIR"
  if [[ -d $CONTAINER_LOGS ]]; then
    find "$CONTAINER_LOGS" -maxdepth 1 -type l -lname "$POD_LOGS/*" -delete 2>/dev/null || true
    grep -qxF "$CONTAINER_LOGS" "$NODE_DIR/paths.before" 2>/dev/null || rmdir "$CONTAINER_LOGS" 2>/dev/null || true
  fi
  rm -rf -- "$CNI_STATE/networks/$CNI_NET" "$CNI_STATE/results/$CNI_NET-"*
  if ! grep -qxF "$CNI_STATE" "$NODE_DIR/paths.before" 2>/dev/null; then
    rmdir "$CNI_STATE/networks" "$CNI_STATE/results" "$CNI_STATE" 2>/dev/null || true
  fi
  if ! grep -qxF "$SHIM_SOCKETS" "$NODE_DIR/paths.before" 2>/dev/null && ! other_containerd; then
    rm -rf -- "$SHIM_SOCKETS"
  fi
  ip link delete "$BRIDGE" 2>/dev/null || true
  # 5. Kernel settings, cgroups, iptables chains.
  if [[ -f $NODE_DIR/sysctl.orig ]]; then
    local key value
    while read -r key value; do
      [[ -n $key && $(sysctl -n "$key" 2>/dev/null) != "$value" ]] && sysctl -q -w "$key=$value" >/dev/null 2>&1 || true
    done <"$NODE_DIR/sysctl.orig"
  fi
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if command -v iptables-save >/dev/null && [[ -f $NODE_DIR/iptables.before ]]; then
    local table chain
    for table in filter nat mangle; do
      for chain in $(iptables-save -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
        grep -qxF "$table $chain" "$NODE_DIR/iptables.before" && continue
        iptables -t "$table" -F "$chain" 2>/dev/null || true
        iptables -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  fi
  local left
  left="$(node_processes | sort -u | tr '\n' ' ')"
  [[ -z ${left// } ]] || log "WARNING: processes still in the node's cgroups: $left"
  rm -rf -- "$NODE_DIR"
  rm -f -- "${owner:-$S}/node.env"
  log "real node stopped and cleaned up"
}

# ---------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------
node_ip() {
  local ip="${TYCHO_NODE_IP:-}"
  [[ -n $ip ]] || ip="$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)"
  [[ -n $ip ]] || ip="$(ip -4 -o addr show scope global | awk '{sub("/.*", "", $4); print $4; exit}')"
  [[ -n $ip && $ip != 127.* ]] || die "no non-loopback IPv4 address for the node (set TYCHO_NODE_IP)"
  echo "$ip"
}

record_before() {
  local key
  for key in "${SYSCTLS[@]}"; do
    if [[ -e /proc/sys/${key//.//} ]]; then printf '%s %s\n' "$key" "$(sysctl -n "$key")"; fi
  done >"$NODE_DIR/sysctl.orig"
  { ls /run/netns /var/run/netns 2>/dev/null || true; } | sort -u >"$NODE_DIR/netns.before"
  local p
  for p in "$CONTAINER_LOGS" "$CNI_STATE" "$SHIM_SOCKETS"; do [[ -e $p ]] && echo "$p"; done >"$NODE_DIR/paths.before"
  if command -v iptables-save >/dev/null; then
    local table
    for table in filter nat mangle; do
      iptables-save -t "$table" 2>/dev/null | sed -n "s/^:\\([^ ]*\\) .*/$table \\1/p"
    done >"$NODE_DIR/iptables.before"
  fi
}

node_certs() { # client certificate O=system:nodes, CN=system:node:NAME from the cluster CA
  local P="$S/pki" K="$NODE_DIR/pki"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$K/node.key" \
    -out "$K/node.csr" -subj "/O=system:nodes/CN=system:node:$NODE_NAME" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
    >"$K/node.ext"
  openssl x509 -req -in "$K/node.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -extfile "$K/node.ext" -out "$K/node.crt" 2>/dev/null
  rm -f "$K/node.csr" "$K/node.ext"
  chmod 600 "$K/node.key"
  cp "$P/ca.crt" "$K/ca.crt"
  local url
  url="$(sed -n 's/^TYCHO_APISERVER_URL=//p' "$S/cluster.env")"
  cat >"$NODE_DIR/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tycho-test
  cluster: {server: "$url", certificate-authority: "$K/ca.crt"}
users:
- name: node
  user: {client-certificate: "$K/node.crt", client-key: "$K/node.key"}
contexts:
- name: tycho-test
  context: {cluster: tycho-test, user: node}
current-context: tycho-test
EOF
  chmod 600 "$NODE_DIR/kubelet.kubeconfig"
}

containerd_config() {
  cat >"$NODE_DIR/containerd.toml" <<EOF
# containerd of the test cluster's real node (tests/cluster/node.sh)
version = 2
root = "$CTRD_ROOT"
state = "$RUN_DIR/containerd"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Without it every sandbox fails ("can't get final child's PID from pipe: EOF"):
  # this host does not allow lowering oom_score_adj (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
        Root = "$RUN_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
    max_conf_num = 1
EOF
  mkdir -p "$NODE_DIR/cni"
  cat >"$NODE_DIR/cni/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NET",
  "plugins": [{
    "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
EOF
}

# pause_archive <file>: a docker-archive of the pause binary FROM scratch (made
# here, byte for byte the same every time), for `ctr images import`.
pause_archive() {
  python3 - "$TYCHO_BIN_PAUSE/pause" "$PAUSE_IMAGE" "$1" <<'PY'
import hashlib, io, json, sys, tarfile
binary, name, out = sys.argv[1:]
def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            info.mtime = 0; info.uid = info.gid = 0; info.uname = info.gname = ""
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
data = open(binary, "rb").read()
info = tarfile.TarInfo("pause"); info.size = len(data); info.mode = 0o755
layer = tar_bytes([(info, data)])
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
                     "rootfs": {"type": "layers", "diff_ids": [diff_id]}}, sort_keys=True).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]).encode()
members = []
for fname, blob in ((config_name, config), ("layer.tar", layer), ("manifest.json", manifest)):
    i = tarfile.TarInfo(fname); i.size = len(blob); i.mode = 0o644
    members.append((i, blob))
open(out, "wb").write(tar_bytes(members))
PY
}

start_daemon() { # <name> <command...>  (as up.sh's start: own session, no lock fds)
  local name="$1"; shift
  setsid "$@" >"$NODE_DIR/logs/$name.log" 2>&1 </dev/null 7>&- 8>&- &
  tycho_record_pid "$name" "$!"
}

wait_until() { # <description> <command...>
  local desc="$1"; shift
  local deadline=$((SECONDS + TIMEOUT)) c
  until "$@" >/dev/null 2>&1; do
    for c in containerd kubelet; do
      if [[ -f $TYCHO_PID_DIR/$c.pid ]] && ! tycho_alive "$c"; then
        echo "node.sh: $c exited while waiting for $desc; last lines of $NODE_DIR/logs/$c.log:" >&2
        tail -n 25 "$NODE_DIR/logs/$c.log" >&2 || true
        return 1
      fi
    done
    (( SECONDS < deadline )) || { echo "node.sh: timed out after ${TIMEOUT}s waiting for $desc" >&2; return 1; }
    sleep 0.3
  done
  log "$desc: ok"
}

# A failed `up` leaves nothing running: the logs go to the cluster's log dir,
# then everything is undone.
up_failed() {
  local rc=$?
  echo "node.sh: starting the real node FAILED (exit $rc); logs in $S/logs/node/; undoing" >&2
  mkdir -p "$S/logs/node" && cp -r "$NODE_DIR/logs/." "$S/logs/node/" 2>/dev/null || true
  node_down || true
  exit "$rc"
}

node_running() { # this cluster's node is up and Ready
  [[ -f $NODE_DIR/owner && $(cat "$NODE_DIR/owner") == "$S" ]] && tycho_alive containerd && tycho_alive kubelet &&
    [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

node_up() {
  local start=$SECONDS
  (( EUID == 0 )) || die "needs root (kubelet and containerd)"
  [[ -f $S/cluster.env && -f $S/pki/ca.key ]] || die "no test cluster at $S (run up.sh first)"
  local tool
  for tool in containerd ctr runc openssl python3 ip sysctl; do
    command -v "$tool" >/dev/null || die "needs $tool (bash images/setup-host.sh installs it)"
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || die "needs the CNI plugins in /usr/lib/cni (containernetworking-plugins)"
  [[ -x $KUBELET && -x $TYCHO_BIN_PAUSE/pause ]] || die "missing kubelet or pause; run: bash tests/cluster/build.sh kubelet pause"
  if node_running; then log "real node $NODE_NAME already running"; return 0; fi
  if [[ -d $NODE_DIR ]]; then
    local owner
    owner="$(cat "$NODE_DIR/owner" 2>/dev/null || true)"
    if [[ -n $owner && $owner != "$S" ]] && { tycho_alive kubelet || tycho_alive containerd; }; then
      die "the real node of the cluster at $owner is running (one per machine); stop it first: TYCHO_CLUSTER_DIR=$owner bash $HERE/node.sh down"
    fi
    log "cleaning up a previous real node first"
    node_down
  fi
  local ip
  ip="$(node_ip)"
  mkdir -p "$NODE_DIR"/{pids,logs,pki} "$RUN_DIR" "$CTRD_ROOT"
  chmod 700 "$NODE_DIR"
  echo "$S" >"$NODE_DIR/owner"
  trap up_failed EXIT
  record_before
  node_certs
  containerd_config

  log "starting containerd (socket $SOCK, images in $CTRD_ROOT)"
  start_daemon containerd containerd --config "$NODE_DIR/containerd.toml"
  wait_until "containerd" ctr --address "$SOCK" version
  if ! ctr_ images ls -q | grep -qxF "$PAUSE_IMAGE"; then
    pause_archive "$NODE_DIR/pause.tar"
    ctr_ images import "$NODE_DIR/pause.tar" >/dev/null
    rm -f "$NODE_DIR/pause.tar"
  fi
  # Containers a crashed run left in containerd's (kept) metadata.
  local id
  for id in $(ctr_ containers ls -q); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done

  local port healthz
  read -r port healthz < <(tycho_free_ports 2 "$ip")
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# What this host kind needs (../shared/MACHINE.md): cgroupfs on a v1/v2 hybrid,
# no CAP_SYS_RESOURCE (oomScoreAdj 0), no iptables management.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
readOnlyPort: 0
address: "$ip"
port: $port
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
containerRuntimeEndpoint: "unix://$SOCK"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$NODE_DIR/pki/ca.crt"}
authorization: {mode: Webhook}
registerWithTaints:
- {key: $LABEL_KEY, value: "true", effect: NoSchedule}
# Imported images are the only copies (no registry): never garbage-collect them,
# and do not evict pods for a disk that is merely busy.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
maxPods: 30
serializeImagePulls: false
resolvConf: /etc/resolv.conf
EOF
  log "starting kubelet $TYCHO_K8S_VERSION as node $NODE_NAME ($ip:$port)"
  start_daemon kubelet "$KUBELET" --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$NODE_DIR/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$ip" \
    --root-dir="$KUBELET_ROOT" --cert-dir="$NODE_DIR/pki" \
    --node-labels="$LABEL_KEY=true,type=real,tycho.dev/pool=real" --v=1
  wait_until "node $NODE_NAME registered" kc get node "$NODE_NAME"
  wait_until "node $NODE_NAME Ready" kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  local gateway
  gateway="$(python3 -c 'import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))' "$POD_CIDR")"
  cat >"$S/node.env" <<EOF
TYCHO_NODE_NAME=$NODE_NAME
TYCHO_NODE_IP=$ip
TYCHO_NODE_SELECTOR=$LABEL_KEY=true
TYCHO_NODE_TAINT=$LABEL_KEY=true:NoSchedule
TYCHO_NODE_POD_CIDR=$POD_CIDR
TYCHO_NODE_POD_GATEWAY=$gateway
TYCHO_NODE_CONTAINERD=$SOCK
EOF
  # MinIO as pods see it (up.sh binds it to all addresses when TYCHO_REAL_NODE=1).
  if grep -qx 'TYCHO_REAL_NODE_READY=1' "$S/cluster.env"; then
    echo "TYCHO_NODE_S3_ENDPOINT=http://$ip:$(sed -n 's/^S3_PORT=//p' "$S/cluster.env")" >>"$S/node.env"
  fi
  trap - EXIT
  log "real node $NODE_NAME Ready in $((SECONDS - start))s (pods: nodeSelector $LABEL_KEY=true + toleration; logs $NODE_DIR/logs)"
}

# ---------------------------------------------------------------------------
# load: images from podman/docker storage into the node's containerd
# ---------------------------------------------------------------------------
node_load() {
  tycho_alive containerd || die "the real node is not running (node.sh up)"
  local engine="${DOCKER:-podman}" image id have tmp start
  for image in "$@"; do
    start=$SECONDS
    id="$("$engine" image inspect --format '{{.Id}}' "$image")" || die "no image $image in $engine"
    id="sha256:${id#sha256:}"
    have="$(ctr_ images ls "name==$image" 2>/dev/null | awk 'NR > 1 {print $NF}')"
    if [[ $have == *"tycho.dev/source-id=$id"* ]]; then
      log "$image: already in containerd ($id)"
      continue
    fi
    local old="${have##*tycho.dev/source-id=}"
    old="${old%%,*}"
    tmp="$(mktemp -d "${TMPDIR:-/var/tmp}/tycho-load.XXXXXX")"
    "$engine" save --format docker-archive -o "$tmp/image.tar" "$image" >/dev/null 2>&1 ||
      "$engine" save -o "$tmp/image.tar" "$image"
    ctr_ images import "$tmp/image.tar" >/dev/null
    rm -rf -- "$tmp"
    ctr_ images label "$image" "tycho.dev/source-id=$id" >/dev/null
    # The image this one replaces: drop its ID reference (CRI's) so containerd's garbage
    # collector frees the layers no other image uses (the image cache stays bounded).
    if [[ $old == sha256:* && $old != "$id" ]]; then ctr_ images rm "$old" >/dev/null 2>&1 || true; fi
    log "$image: imported into containerd in $((SECONDS - start))s ($id)"
  done
}

node_status() {
  if [[ ! -d $NODE_DIR ]]; then echo "no real node"; return 1; fi
  echo "owner: $(cat "$NODE_DIR/owner" 2>/dev/null)"
  local c
  for c in containerd kubelet; do
    if tycho_alive "$c"; then echo "$c: running (pid $(tycho_pid "$c"))"; else echo "$c: not running"; fi
  done
  [[ -f $S/node.env ]] && cat "$S/node.env"
  node_running
}

cmd="${1:-}"
shift || true
case $cmd in
  up) node_lock; node_up ;;
  down) node_lock; node_down ;;
  load) (( $# )) || die "load: which images?"; node_load "$@" ;;
  status) node_status ;;
  purge) node_lock; node_down; log "removing $CTRD_ROOT"; rm -rf -- "$CTRD_ROOT" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; [[ $cmd == -h || $cmd == --help ]] ;;
esac
