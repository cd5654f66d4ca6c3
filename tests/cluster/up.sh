#!/usr/bin/env bash
# Start a real Kubernetes control plane for tests, on 127.0.0.1 only:
#   etcd -> kube-apiserver (client-cert auth, RBAC+Node authz)
#        -> kube-controller-manager (all default controllers: job, GC, ...)
#        -> kube-scheduler (the real one)
#        -> kwok (simulates kubelets: fake nodes cpu-1, cpu-2, gpu-1)
#   minio (S3 API, bucket "tycho")
# State lives in .cluster/ at the repo root (git-ignored): certs, kubeconfigs,
# data, logs (.cluster/logs/), pids and the chosen ports.
#
# Binaries come from tests/cluster/build.sh (run it first; it is cached).
#
# Env:
#   TYCHO_KWOK_AUTOCOMPLETE=1  pods owned by Jobs complete as soon as they
#                              run (benchmarks).  Default 0: pods stay Running
#                              until a test patches status.phase to
#                              Succeeded/Failed (kubectl patch
#                              --subresource=status), so tests control timing.
#   TYCHO_CLUSTER_DIR          state dir (default <repo>/.cluster)
#   TYCHO_UP_TIMEOUT           seconds to wait for each readiness step (90)
#   TYCHO_REAL_NODE=1          also join a real node (kubelet + containerd,
#                              tests/cluster/node.sh; needs root): pods that
#                              select and tolerate tycho.dev/real-node=true
#                              really run.  MinIO then listens on all addresses
#                              so pods reach it at the node IP (node.env).
#
# Idempotent-ish: if all components recorded in .cluster/pids are alive and
# the apiserver is ready with 3 Ready nodes, it says so and exits 0; a
# half-dead or unhealthy previous cluster is torn down first.  Concurrent
# up.sh/down.sh calls on the same state dir are serialised (flock), so a
# second caller waits for the first and then finds the cluster running.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/cluster/lib.sh
source "$HERE/lib.sh"
S="$TYCHO_CLUSTER_DIR"
AUTOCOMPLETE="${TYCHO_KWOK_AUTOCOMPLETE:-0}"
REAL_NODE="${TYCHO_REAL_NODE:-0}"
TIMEOUT="${TYCHO_UP_TIMEOUT:-90}"
START=$SECONDS
tycho_lock

# ---------------------------------------------------------------------------
# Already running?
# ---------------------------------------------------------------------------
# healthy_cluster: apiserver ready and the 3 fake nodes Ready (a previous
# up.sh may have died half-way with every process still alive).
healthy_cluster() {
  [[ -f $S/cluster.env && -f $S/kubeconfig ]] || return 1
  local url kubectl
  url="$(sed -n 's/^TYCHO_APISERVER_URL=//p' "$S/cluster.env")"
  kubectl="${KUBECTL:-$(command -v kubectl)}" || return 1
  curl -sf --max-time 5 --cacert "$S/pki/ca.crt" --cert "$S/pki/admin.crt" \
    --key "$S/pki/admin.key" "$url/readyz" >/dev/null || return 1
  [[ $("$kubectl" --kubeconfig "$S/kubeconfig" get nodes cpu-1 cpu-2 gpu-1 --request-timeout=5s \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}') \
    == "True True True " ]]
}
if [[ -d $S/pids ]]; then
  alive=0
  for c in "${TYCHO_COMPONENTS[@]}"; do tycho_alive "$c" && alive=$((alive + 1)); done
  if (( alive == ${#TYCHO_COMPONENTS[@]} )) && healthy_cluster; then
    # shellcheck disable=SC1091
    source "$S/cluster.env"
    tycho_log "cluster already running (apiserver $TYCHO_APISERVER_URL, state $S)"
    if [[ $AUTOCOMPLETE != "$TYCHO_KWOK_AUTOCOMPLETE" ]]; then
      tycho_log "WARNING: it runs with TYCHO_KWOK_AUTOCOMPLETE=$TYCHO_KWOK_AUTOCOMPLETE, not $AUTOCOMPLETE;" \
        "run down.sh first to switch"
    fi
    if [[ $REAL_NODE == 1 ]]; then
      if [[ ${TYCHO_REAL_NODE_READY:-0} != 1 ]]; then
        tycho_log "WARNING: it was started without TYCHO_REAL_NODE=1 (MinIO on loopback only); joining the node anyway"
      fi
      bash "$HERE/node.sh" up
    fi
    exit 0
  fi
  tycho_log "found a broken cluster ($alive/${#TYCHO_COMPONENTS[@]} components alive): cleaning up first"
  bash "$HERE/down.sh"
elif [[ -e $S ]]; then
  [[ -f $S/.tycho-cluster ]] || { echo "up.sh: $S exists and is not a cluster state dir" >&2; exit 1; }
  rm -rf -- "$S"
fi

# ---------------------------------------------------------------------------
# Binaries (built and cached by build.sh)
# ---------------------------------------------------------------------------
ETCD="$TYCHO_BIN_ETCD/etcd"
APISERVER="$TYCHO_BIN_K8S/kube-apiserver"
KCM="$TYCHO_BIN_K8S/kube-controller-manager"
SCHEDULER="$TYCHO_BIN_K8S/kube-scheduler"
KWOK="$TYCHO_BIN_KWOK/kwok"
MINIO="$TYCHO_BIN_MINIO/minio"
for b in "$ETCD" "$APISERVER" "$KCM" "$SCHEDULER" "$KWOK" "$MINIO"; do
  [[ -x $b ]] || { echo "up.sh: missing $b; run: bash tests/cluster/build.sh" >&2; exit 1; }
done
# Prefer the kubectl built with the cluster (same version), else any on PATH.
KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
[[ -n $KUBECTL ]] || { echo "up.sh: no kubectl (run build.sh)" >&2; exit 1; }
for tool in openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "up.sh: needs $tool" >&2; exit 1; }
done

mkdir -p "$S"/{pids,logs,pki,etcd,minio/data,kwok}
touch "$S/.tycho-cluster"   # marker: down.sh only deletes dirs that carry it
chmod 700 "$S" "$S/etcd"    # etcd warns about a group/world-readable data dir

# If anything below fails, show which component died and its last log lines;
# leave the state for inspection (down.sh cleans it, up.sh retries cleanly).
on_error() {
  local rc=$?
  echo "up.sh: FAILED after $((SECONDS - START))s (exit $rc)" >&2
  for c in "${TYCHO_COMPONENTS[@]}"; do
    if [[ -f $S/pids/$c.pid ]] && ! tycho_alive "$c"; then
      echo "---- $c is not running; last lines of $S/logs/$c.log:" >&2
      tail -n 25 "$S/logs/$c.log" >&2 || true
    fi
  done
  echo "logs: $S/logs/   clean up: bash tests/cluster/down.sh" >&2
  exit "$rc"
}
trap on_error ERR

# ---------------------------------------------------------------------------
# Ports: free loopback ports, distinct, recorded in cluster.env for tests.
# Dynamic ports let several worktrees / CI jobs run clusters side by side;
# tycho_free_ports picks them outside the kernel's ephemeral range, so no
# outgoing connection takes one between now and the daemon's bind.
# ---------------------------------------------------------------------------
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT S3_PORT S3_CONSOLE_PORT < <(tycho_free_ports 8)
API_URL="https://127.0.0.1:$API_PORT"
S3_URL="http://127.0.0.1:$S3_PORT"

# ---------------------------------------------------------------------------
# PKI: a throwaway CA, the apiserver serving cert, one client cert per
# identity (so RBAC sees the real component users), and the service-account
# signing key.  ECDSA P-256 keys: generating them takes milliseconds.
# ---------------------------------------------------------------------------
P="$S/pki"
tycho_log "generating certificates in $P"
# make_ca <name> <CN>
make_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$P/$1.key" -out "$P/$1.crt" -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
}
make_ca ca tycho-test-ca
# Separate CA for the aggregation layer's front proxy (requestheader auth),
# as kubeadm does: without it controller-manager/scheduler log errors about
# a missing requestheader CA, and aggregated APIs could not authenticate.
make_ca front-proxy-ca tycho-test-front-proxy-ca

# issue <name> <subject> <extendedKeyUsage> [subjectAltName] [ca]
issue() {
  local name="$1" subj="$2" eku="$3" san="${4:-}" ca="${5:-ca}"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$P/$name.key" -out "$P/$name.csr" -subj "$subj" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$P/$name.ext"
  openssl x509 -req -in "$P/$name.csr" -CA "$P/$ca.crt" -CAkey "$P/$ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -extfile "$P/$name.ext" \
    -out "$P/$name.crt" 2>/dev/null
  rm -f "$P/$name.csr" "$P/$name.ext"
}
issue apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
# system:masters = cluster-admin, bypasses RBAC: for the test harness only.
issue admin "/O=system:masters/CN=tycho-admin" clientAuth
# The well-known component users that the default RBAC policy grants to.
issue kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
issue kube-scheduler "/CN=system:kube-scheduler" clientAuth
# kwok impersonates many kubelets (nodes, leases, pod status of all nodes);
# it is test scaffolding, not under test, so it gets admin rights.
issue kwok "/O=system:masters/CN=kwok-controller" clientAuth
# The API server's identity towards kubelets (logs, exec, port-forward on the
# real node; kwok ignores it).
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
issue front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
# Service-account token signing key pair.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$P/sa.key" 2>/dev/null
openssl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
chmod 600 "$P"/*.key

# kubeconfig <file> <cert-name>: certs embedded so the file is self-contained.
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tycho-test
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 <"$P/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 <"$P/$2.crt")
    client-key-data: $(base64 -w0 <"$P/$2.key")
contexts:
- name: tycho-test
  context: {cluster: tycho-test, user: $2, namespace: default}
current-context: tycho-test
EOF
  chmod 600 "$1"
}
kubeconfig "$S/kubeconfig" admin
for c in kube-controller-manager kube-scheduler kwok; do kubeconfig "$S/$c.kubeconfig" "$c"; done

# ---------------------------------------------------------------------------
# Process management
# ---------------------------------------------------------------------------
# start <component> [VAR=value ...] -- <command...>
# setsid detaches it from this shell's process group so that Ctrl-C here, or
# the caller's job control, does not take the cluster down with it.
# 8>&- : the daemon must not inherit the fd holding the up/down lock, or the
# lock would stay held for the cluster's whole life.
start() {
  local name="$1"; shift
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" setsid "$@" >"$S/logs/$name.log" 2>&1 </dev/null 8>&- &
  tycho_record_pid "$name" "$!"
}

# wait_for <description> <command...>: poll until the command succeeds; fail
# fast (with the log) if any started component dies meanwhile.
wait_for() {
  local desc="$1"; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    for c in "${TYCHO_COMPONENTS[@]}"; do
      if [[ -f $S/pids/$c.pid ]] && ! tycho_alive "$c"; then
        echo "up.sh: $c exited while waiting for $desc" >&2
        return 1
      fi
    done
    if (( SECONDS >= deadline )); then
      echo "up.sh: timed out after ${TIMEOUT}s waiting for $desc" >&2
      return 1
    fi
    sleep 0.3
  done
  tycho_log "$desc: ok (t=$((SECONDS - START))s)"
}

kc() { "$KUBECTL" --kubeconfig "$S/kubeconfig" "$@"; }

# ---------------------------------------------------------------------------
# etcd + minio (independent of each other)
# ---------------------------------------------------------------------------
tycho_log "starting etcd on 127.0.0.1:$ETCD_PORT"
# --unsafe-no-fsync: test data is thrown away anyway, and fsync dominates
# apiserver write latency on a VM disk.
start etcd -- "$ETCD" --name=tycho --data-dir="$S/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="tycho=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level=warn

S3_USER="tycho-$(openssl rand -hex 4)"
# Pods on the real node reach MinIO at the node's IP; loopback otherwise.
S3_ADDRESS=127.0.0.1
[[ $REAL_NODE == 1 ]] && S3_ADDRESS=0.0.0.0
S3_PASSWORD="$(openssl rand -hex 20)"
tycho_log "starting minio on 127.0.0.1:$S3_PORT"
# MINIO_BROWSER=off: no web console; MINIO_UPDATE=off: no update checks
# (there is no network anyway).
start minio MINIO_ROOT_USER="$S3_USER" MINIO_ROOT_PASSWORD="$S3_PASSWORD" \
  MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 HOME="$S/minio" -- \
  "$MINIO" server --quiet --address "$S3_ADDRESS:$S3_PORT" \
  --console-address "127.0.0.1:$S3_CONSOLE_PORT" "$S/minio/data"

wait_for "etcd healthy" curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# ---------------------------------------------------------------------------
# kube-apiserver
# ---------------------------------------------------------------------------
tycho_log "starting kube-apiserver on $API_URL"
# --endpoint-reconciler-type=none: the apiserver would publish its advertise
# address (loopback) as the endpoints of the "kubernetes" Service, which
# validation rejects for loopback IPs (error every 10 s).  No pod really
# runs here, so nothing needs that Service's endpoints.
start kube-apiserver -- "$APISERVER" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --secure-port="$API_PORT" \
  --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --requestheader-client-ca-file="$P/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$P/front-proxy-client.crt" \
  --proxy-client-key-file="$P/front-proxy-client.key" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" \
  --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --profiling=false

wait_for "kube-apiserver ready" curl -sf --cacert "$P/ca.crt" \
  --cert "$P/admin.crt" --key "$P/admin.key" "$API_URL/readyz"

# ---------------------------------------------------------------------------
# controller-manager, scheduler, kwok
# ---------------------------------------------------------------------------
tycho_log "starting kube-controller-manager, kube-scheduler, kwok"
# --use-service-account-credentials: each controller acts as its own SA
# (system:serviceaccount:kube-system:job-controller, ...), as in real
# clusters, so RBAC is exercised like in production.
start kube-controller-manager -- "$KCM" \
  --kubeconfig="$S/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig="$S/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig="$S/kube-controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --leader-elect=false \
  --controllers='*' \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$P/sa.key" \
  --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --cluster-name=tycho-test \
  --kube-api-qps=200 --kube-api-burst=400
# (qps/burst: the default client limit of 20 req/s made the Job controller the
# bottleneck when hundreds of stage Jobs finish at once in benchmarks.)

start kube-scheduler -- "$SCHEDULER" \
  --kubeconfig="$S/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig="$S/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig="$S/kube-scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
  --leader-elect=false

KWOK_CONFIG="$HERE/kwok/stages.yaml"
if [[ $AUTOCOMPLETE == 1 ]]; then
  KWOK_CONFIG+=",$HERE/kwok/stage-pod-complete.yaml"
fi
# HOME points into the state dir so a developer's ~/.kwok/kwok.yaml is not
# merged in.  Only nodes annotated kwok.x-k8s.io/node=fake are simulated.
# --cidr: pod IPs come from a /16 so benchmarks can run many pods.
start kwok HOME="$S/kwok" -- "$KWOK" \
  --kubeconfig="$S/kwok.kubeconfig" \
  --config="$KWOK_CONFIG" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.0/16 \
  --node-ip=127.0.0.1 \
  --server-address="127.0.0.1:$KWOK_PORT"

# ---------------------------------------------------------------------------
# Cluster contents: fake nodes, S3 bucket
# ---------------------------------------------------------------------------
tycho_log "registering fake nodes cpu-1, cpu-2, gpu-1"
kc apply -f "$HERE/nodes.yaml" >/dev/null

wait_for "minio live" curl -sf "$S3_URL/minio/health/live"
# Create the bucket with a SigV4-signed PUT (curl >= 7.75 signs natively),
# so no S3 client library is needed here.  200 = created.
code=$(curl -s -o "$S/logs/minio-mkbucket.out" -w '%{http_code}' -X PUT \
  --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_USER:$S3_PASSWORD" "$S3_URL/tycho")
if [[ $code != 200 ]]; then
  echo "up.sh: creating bucket tycho failed (HTTP $code):" >&2
  cat "$S/logs/minio-mkbucket.out" >&2
  false
fi

# Plain KEY=value lines: usable by `source` (set -a), docker-style env
# files and python-dotenv alike.
cat >"$S/s3.env" <<EOF
AWS_ACCESS_KEY_ID=$S3_USER
AWS_SECRET_ACCESS_KEY=$S3_PASSWORD
AWS_DEFAULT_REGION=us-east-1
AWS_ENDPOINT_URL=$S3_URL
TYCHO_S3_ENDPOINT=$S3_URL
TYCHO_S3_BUCKET=tycho
EOF
chmod 600 "$S/s3.env"

cat >"$S/cluster.env" <<EOF
TYCHO_APISERVER_URL=$API_URL
TYCHO_KUBECONFIG=$S/kubeconfig
TYCHO_KWOK_AUTOCOMPLETE=$AUTOCOMPLETE
TYCHO_REAL_NODE_READY=$REAL_NODE
TYCHO_K8S_VERSION=$TYCHO_K8S_VERSION
ETCD_PORT=$ETCD_PORT
APISERVER_PORT=$API_PORT
KUBE_CONTROLLER_MANAGER_PORT=$KCM_PORT
KUBE_SCHEDULER_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
S3_PORT=$S3_PORT
EOF

# ---------------------------------------------------------------------------
# Ready?
# ---------------------------------------------------------------------------
wait_for "kube-controller-manager healthy" curl -skf "https://127.0.0.1:$KCM_PORT/healthz"
wait_for "kube-scheduler healthy" curl -skf "https://127.0.0.1:$SCHED_PORT/healthz"
wait_for "nodes Ready" kc wait --for=condition=Ready node/cpu-1 node/cpu-2 node/gpu-1 --timeout=5s
# The ServiceAccount admission plugin rejects pods until the namespace's
# "default" SA exists (created by the serviceaccount controller).
wait_for "default ServiceAccount" kc -n default get serviceaccount default

if [[ $REAL_NODE == 1 ]]; then
  tycho_log "joining the real node (TYCHO_REAL_NODE=1)"
  bash "$HERE/node.sh" up
fi

trap - ERR
cat <<EOF

Tycho test cluster is up in $((SECONDS - START))s  (Kubernetes $TYCHO_K8S_VERSION, state: $S)
  apiserver   $API_URL   (RBAC,Node authz; client-cert auth)
  kubeconfig  $S/kubeconfig   (admin, system:masters)
  nodes       cpu-1, cpu-2 (pool=cpu, 8 CPU/32Gi), gpu-1 (pool=gpu, 16 CPU/64Gi, 2x nvidia.com/gpu, tainted)
  kwok        pods of Jobs $( [[ $AUTOCOMPLETE == 1 ]] && echo "complete immediately (TYCHO_KWOK_AUTOCOMPLETE=1)" || echo "stay Running until a test patches status.phase (TYCHO_KWOK_AUTOCOMPLETE=0)")
  s3 (minio)  $S3_URL   bucket 'tycho', credentials in $S/s3.env
$( [[ $REAL_NODE == 1 ]] && echo "  real node   $(sed -n 's/^TYCHO_NODE_NAME=//p' "$S/node.env") (kubelet + containerd): nodeSelector tycho.dev/real-node=true + toleration; $S/node.env" )
  logs        $S/logs/

  source tests/cluster/env.sh   # sets KUBECONFIG, AWS_*/TYCHO_S3_* and PATH
  kubectl get nodes
  bash tests/cluster/down.sh    # stop and wipe
EOF
