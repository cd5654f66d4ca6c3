#!/usr/bin/env bash
# Smoke test of a running local cluster (tests/cluster/up.sh):
#   - 3 Ready fake nodes
#   - RBAC is enforced (a plain ServiceAccount may not create Jobs)
#   - a GPU Job (nodeSelector pool=gpu, toleration, nvidia.com/gpu: 1) is
#     bound by the real scheduler to gpu-1; a CPU Job to cpu-1/cpu-2
#   - kwok runs the pods; patching a pod's status to Succeeded makes the Job
#     controller mark the Job Complete (with TYCHO_KWOK_AUTOCOMPLETE=1 kwok
#     does that by itself)
#   - deleting a Job garbage-collects its pod
#   - the MinIO S3 endpoint accepts a put/get in bucket "tycho"
# Runs in its own namespace, which it deletes at the end.
set -euo pipefail

# shellcheck source=tests/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
S="$TYCHO_CLUSTER_DIR"
[[ -f $S/cluster.env ]] || { echo "smoke.sh: no cluster (run tests/cluster/up.sh)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$S/cluster.env"
KUBECTL="${KUBECTL:-$(command -v kubectl)}"
kc() { "$KUBECTL" --kubeconfig "$S/kubeconfig" "$@"; }

NS="smoke-$(date +%s)"
PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); tycho_log "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); tycho_log "FAIL - $*"; }
check() { local d="$1"; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

# poll <seconds> <command...>
poll() {
  local t="$1"; shift
  local deadline=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do (( SECONDS < deadline )) || return 1; sleep 0.3; done
}

cleanup() { kc delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

ready_nodes() {
  [[ $(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True) == 3 ]]
}
check "3 nodes Ready" ready_nodes

kc create namespace "$NS" >/dev/null
poll 30 kc -n "$NS" get serviceaccount default
sa_denied() { [[ $(kc auth can-i create jobs -n "$NS" --as="system:serviceaccount:$NS:default") == no ]]; }
check "RBAC: default ServiceAccount may not create jobs" sa_denied

job() { # <name> <pool> [gpu]
  local tolerations="" limits="cpu: 100m"
  if [[ ${3:-} == gpu ]]; then
    tolerations='tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]'
    limits='nvidia.com/gpu: 1'
  fi
  kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {tycho.dev/pool: $2}
      $tolerations
      containers:
      - name: main
        image: registry.invalid/tycho/step:latest
        resources: {limits: {$limits}}
EOF
}
pod_of() { kc -n "$NS" get pods -l "job-name=$1" -o jsonpath='{.items[0].metadata.name}'; }
pod_field() { kc -n "$NS" get pod "$1" -o jsonpath="$2"; }
job_complete() {
  [[ $(kc -n "$NS" get job "$1" -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}') == True ]]
}

job smoke-gpu gpu gpu
job smoke-cpu cpu
poll 30 pod_of smoke-gpu && poll 30 pod_of smoke-cpu
GPU_POD="$(pod_of smoke-gpu)"; CPU_POD="$(pod_of smoke-cpu)"
bound() { [[ -n $(pod_field "$1" '{.spec.nodeName}') ]]; }
poll 30 bound "$GPU_POD" || true
poll 30 bound "$CPU_POD" || true
gpu_node="$(pod_field "$GPU_POD" '{.spec.nodeName}')"
cpu_node="$(pod_field "$CPU_POD" '{.spec.nodeName}')"
check "GPU job pod bound to gpu-1 (got '$gpu_node')" test "$gpu_node" == gpu-1
check "CPU job pod bound to cpu-1/cpu-2 (got '$cpu_node')" [ "$cpu_node" == cpu-1 -o "$cpu_node" == cpu-2 ]

if [[ $TYCHO_KWOK_AUTOCOMPLETE == 1 ]]; then
  check "kwok completed the GPU job by itself" poll 30 job_complete smoke-gpu
else
  running() { [[ $(pod_field "$1" '{.status.phase}') == Running ]]; }
  check "kwok moved the GPU pod to Running" poll 30 running "$GPU_POD"
  sleep 2
  check "GPU pod stays Running (no autocomplete)" running "$GPU_POD"
  not_complete() { ! job_complete "$1"; }
  check "GPU job not complete before the test says so" not_complete smoke-gpu
  # What a test does to finish a step: set the terminal phase (and, for
  # realism, terminated container states) on the status subresource.
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  kc -n "$NS" patch pod "$GPU_POD" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Succeeded\",\"containerStatuses\":[{\"name\":\"main\",\"image\":\"registry.invalid/tycho/step:latest\",\"imageID\":\"\",\"ready\":false,\"restartCount\":0,\"started\":false,\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\",\"startedAt\":\"$now\",\"finishedAt\":\"$now\"}}}]}}" >/dev/null
  check "Job controller marked the GPU job Complete after status patch" poll 30 job_complete smoke-gpu
fi

kc -n "$NS" delete job smoke-gpu --wait=false >/dev/null
gone() { [[ -z $(kc -n "$NS" get pods -l job-name=smoke-gpu -o name) ]]; }
check "deleting the job garbage-collected its pod" poll 30 gone

# --- S3 (MinIO) ----------------------------------------------------------------
set -a
# shellcheck disable=SC1091
source "$S/s3.env"
set +a
PY="$TYCHO_REPO_ROOT/.venv/bin/python"
key="smoke/$NS.txt"
if [[ -x $PY ]] && "$PY" -c 'import s3fs' 2>/dev/null; then
  check "s3fs put/get on s3://tycho" "$PY" - "$key" <<'EOF'
import os, sys, s3fs
fs = s3fs.S3FileSystem(endpoint_url=os.environ["TYCHO_S3_ENDPOINT"])
path = "tycho/" + sys.argv[1]
fs.pipe(path, b"hello tycho")
assert fs.cat(path) == b"hello tycho"
assert path in fs.ls("tycho/smoke", refresh=True)
fs.rm(path)
EOF
else
  tycho_log "s3fs not importable from $PY: checking S3 with curl --aws-sigv4 instead"
  s3curl() { curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }
  s3_roundtrip() {
    s3curl -X PUT --data-binary 'hello tycho' "$TYCHO_S3_ENDPOINT/tycho/$key" >/dev/null &&
      [[ $(s3curl "$TYCHO_S3_ENDPOINT/tycho/$key") == 'hello tycho' ]] &&
      s3curl -X DELETE "$TYCHO_S3_ENDPOINT/tycho/$key" >/dev/null
  }
  check "curl SigV4 put/get/delete on s3://tycho" s3_roundtrip
fi

echo "smoke: $PASS passed, $FAIL failed"
(( FAIL == 0 ))
