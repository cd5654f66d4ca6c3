#!/usr/bin/env bash
# End to end on a local kind cluster (needs Docker): create the cluster from
# cluster-conf/kind.yaml, build the operator and CPU stage images and load them into
# the nodes, install the chart with the in-cluster MinIO as the store, apply the
# digits pipeline, wait until it has Succeeded and print the result.
#
#   cluster-conf/kind-e2e.sh            # cluster "tycho-e2e", deleted on success
#   KEEP=1 cluster-conf/kind-e2e.sh     # keep the cluster afterwards
#
# Env: CLUSTER (tycho-e2e), NAMESPACE for pipelines (ml), RELEASE_NAMESPACE
# (tycho-system), TIMEOUT seconds for the pipeline (1800), KEEP (0), SKIP_BUILD=1
# to reuse images already built with images/build.sh, KIND/KUBECTL/HELM/DOCKER to
# choose the binaries. A failed run keeps the cluster and prints diagnostics.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-tycho-e2e}"
NAMESPACE="${NAMESPACE:-ml}"
RELEASE_NAMESPACE="${RELEASE_NAMESPACE:-tycho-system}"
TIMEOUT="${TIMEOUT:-1800}"
KEEP="${KEEP:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
KIND="${KIND:-kind}"
KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
DOCKER="${DOCKER:-docker}"
PIPELINE=digits

log() { printf '\n[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { echo "kind-e2e.sh: $*" >&2; exit 1; }

for tool in "$DOCKER" "$KIND" "$KUBECTL" "$HELM"; do
  command -v "$tool" >/dev/null || die "needs $tool on PATH"
done
"$DOCKER" info >/dev/null 2>&1 || die "the Docker daemon is not reachable"
if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi

TAG="$("$PYTHON" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")"
CONTEXT="kind-$CLUSTER"
kc() { "$KUBECTL" --context "$CONTEXT" "$@"; }
WORK="$(mktemp -d)"

diagnose() {
  local rc=$?
  trap - EXIT
  rm -rf "$WORK"
  if (( rc != 0 )); then
    echo "kind-e2e.sh: FAILED (exit $rc); the cluster $CLUSTER is kept for inspection" >&2
    kc -n "$NAMESPACE" get xp,jobs,pods -o wide >&2 || true
    kc -n "$NAMESPACE" describe xp "$PIPELINE" >&2 || true
    kc -n "$RELEASE_NAMESPACE" logs deployment/tycho --tail=80 >&2 || true
    echo "delete it with: $KIND delete cluster --name $CLUSTER" >&2
  elif [[ $KEEP != 1 ]]; then
    log "deleting cluster $CLUSTER (KEEP=1 keeps it)"
    "$KIND" delete cluster --name "$CLUSTER"
  else
    log "cluster $CLUSTER kept: kubectl --context $CONTEXT -n $NAMESPACE get xp"
  fi
  exit "$rc"
}
trap diagnose EXIT

# --- cluster ------------------------------------------------------------------------
if "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
else
  log "creating kind cluster $CLUSTER (cluster-conf/kind.yaml)"
  "$KIND" create cluster --name "$CLUSTER" --config "$ROOT/cluster-conf/kind.yaml" --wait 120s
fi
kc get nodes -L tycho.dev/pool

# --- images -------------------------------------------------------------------------
if [[ $SKIP_BUILD != 1 ]]; then
  log "building images (images/build.sh operator stage-cpu)"
  "$ROOT/images/build.sh" --tag "$TAG" operator stage-cpu
fi
log "loading images into the nodes"
"$KIND" load docker-image --name "$CLUSTER" "tycho/operator:$TAG" "tycho/stage-cpu:$TAG"

# --- operator -----------------------------------------------------------------------
# The chart puts the stage ServiceAccount and the storage Secret into the pipeline
# namespace (a pod's ServiceAccount and secretKeyRefs are namespace-local), so the
# namespace must exist first; Helm creates only the release namespace.
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
log "installing the chart (release tycho in $RELEASE_NAMESPACE, pipelines in $NAMESPACE)"
"$HELM" --kube-context "$CONTEXT" upgrade --install tycho "$ROOT/charts/tycho" \
  --namespace "$RELEASE_NAMESPACE" --create-namespace \
  --set fullnameOverride=tycho \
  --set "operator.image.tag=$TAG" \
  --set "extraPipelineNamespaces={$NAMESPACE}" \
  --set minio.enabled=true \
  --set minio.persistence.enabled=false \
  --wait --timeout 5m
kc -n "$RELEASE_NAMESPACE" rollout status deployment/tycho --timeout=180s

# --- pipeline -----------------------------------------------------------------------
# A copy of the manifest with spec.code.digest set: the code in the stage image is
# identified by its digest (images are loaded by tag here, so they are not pinned).
cp -r "$ROOT/pipelines/$PIPELINE" "$ROOT/pipelines/$PIPELINE.yaml" "$WORK/"
CODE_DIGEST="$(PYTHONPATH="$ROOT/operator" "$PYTHON" -c 'import sys; from pathlib import Path; from tycho.provenance import code; print(code.digest(Path(sys.argv[1])))' "$ROOT/pipelines/$PIPELINE")"
"$PYTHON" "$ROOT/images/pin.py" --code-dir "$WORK/$PIPELINE" --code-digest "$CODE_DIGEST" "$WORK/$PIPELINE.yaml"
log "applying pipelines/$PIPELINE.yaml in namespace $NAMESPACE"
kc -n "$NAMESPACE" apply -f "$WORK/$PIPELINE.yaml"

log "waiting up to ${TIMEOUT}s for $PIPELINE to finish"
deadline=$((SECONDS + TIMEOUT))
phase=""
while (( SECONDS < deadline )); do
  line="$(kc -n "$NAMESPACE" get xp "$PIPELINE" --no-headers 2>/dev/null || true)"
  phase="$(kc -n "$NAMESPACE" get xp "$PIPELINE" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  printf '  %s\n' "$line"
  case $phase in
    Succeeded) break ;;
    Failed|Invalid) die "pipeline $PIPELINE ended $phase" ;;
  esac
  sleep 15
done
[[ $phase == Succeeded ]] || die "pipeline $PIPELINE did not succeed within ${TIMEOUT}s (phase: ${phase:-none})"

# --- result -------------------------------------------------------------------------
log "result"
kc -n "$NAMESPACE" get xp "$PIPELINE" -o wide
echo
printf '%-10s %-10s %-6s %s\n' STAGE PHASE CACHED PROVENANCE
kc -n "$NAMESPACE" get xp "$PIPELINE" \
  -o jsonpath='{range .status.stages[*]}{.name}{"\t"}{.phase}{"\t"}{.cacheHit}{"\t"}{.provenance}{"\n"}{end}' |
  while IFS=$'\t' read -r name ph hit prov; do printf '%-10s %-10s %-6s %s\n' "$name" "$ph" "${hit:-false}" "$prov"; done
echo
echo "headline: $(kc -n "$NAMESPACE" get xp "$PIPELINE" -o jsonpath='{.status.headline}')"
echo "run id:   $(kc -n "$NAMESPACE" get xp "$PIPELINE" -o jsonpath='{.status.runId}')"
echo "records:  in the in-cluster MinIO (bucket tycho, prefix store/records/); browse with"
echo "          kubectl --context $CONTEXT -n $RELEASE_NAMESPACE port-forward svc/tycho-minio 9000"
log "end to end: OK"
