#!/usr/bin/env bash
# Build (once) the binaries of the local test cluster from Go modules:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kwok, minio (S3 server), helm, kubeconform, and cosign (the trust test's verifier).
# Nothing is downloaded except Go modules from the module proxy: this
# machine cannot fetch release tarballs or container images.
#
# Binaries land in $TYCHO_CACHE/bin/<component>-<version>/ (default
# ~/.cache/tycho).  A binary that already exists there is skipped, so the
# script is cheap to run before every `up.sh`.  The first run takes a while
# (kube-apiserver and minio are big); see tests/cluster/README.md.
#
# Usage: bash tests/cluster/build.sh [component...]
#   components: kubernetes etcd kwok minio helm kubeconform cosign kubelet pause
#   (default: all; kubelet and pause serve the optional real node, node.sh)
set -euo pipefail

# shellcheck source=tests/cluster/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || { echo "build.sh: no Go toolchain (set GO=/path/to/go)" >&2; exit 1; }

# The machine has 2 cores: limit the go command's own parallelism so a
# kube-apiserver link does not starve everything else.
export GOMAXPROCS="${GOMAXPROCS:-2}"
GO_P="${GO_P:-2}"
# Never auto-download another Go toolchain; fail clearly instead.
export GOTOOLCHAIN=local
# Static, path-independent binaries.
export CGO_ENABLED=0
export GOFLAGS="-trimpath"
LDFLAGS_BASE="-s -w"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# The versions in env.sh must agree with the wrapper modules' go.mod files.
check_gomod() { # <dir> <module> <version>
  if ! grep -Eq "^(require)?[[:space:]]*$2 $3\$" "$1/go.mod"; then
    echo "build.sh: $1/go.mod does not require $2 $3 (update env.sh or go.mod)" >&2
    exit 1
  fi
}
check_gomod "$TYCHO_CLUSTER_SCRIPTS/go/k8s" k8s.io/kubernetes "$TYCHO_K8S_VERSION"
check_gomod "$TYCHO_CLUSTER_SCRIPTS/go/etcd" go.etcd.io/etcd/server/v3 "$TYCHO_ETCD_VERSION"

mkdir -p "$TYCHO_CACHE/bin"

TOTAL_START=$(date +%s)
BUILT=()

# build_one <dest-dir> <binary-name> <command...>
# Runs the command with $OUT set to a scratch directory, then moves
# $OUT/<binary-name> into place: an interrupted build never leaves a
# half-written binary that a later run would mistake for a cached one.
# A cached binary is found without waiting; a build holds a lock of its own
# (two worktrees building the same binary build it once, and a slow build of
# one tool never blocks a run that only needs others).
build_one() {
  local dest="$1" name="$2"; shift 2
  if [[ -x "$dest/$name" ]]; then
    log "$name: cached ($dest/$name)"
    return 0
  fi
  mkdir -p "$dest"
  exec 9>"$dest/.build-$name.lock"
  flock 9
  if [[ -x "$dest/$name" ]]; then  # built by another build.sh while this one waited
    exec 9>&-
    log "$name: cached ($dest/$name)"
    return 0
  fi
  OUT="$(mktemp -d "$dest/.tmp.XXXXXX")"
  local start; start=$(date +%s)
  log "$name: building ..."
  if ! "$@"; then
    rm -rf "$OUT"
    echo "build.sh: building $name failed" >&2
    return 1
  fi
  mv -f "$OUT/$name" "$dest/$name"
  rm -rf "$OUT"
  exec 9>&-
  local secs=$(( $(date +%s) - start ))
  log "$name: built in ${secs}s ($(du -h "$dest/$name" | cut -f1))"
  BUILT+=("$name=${secs}s")
}

# --- kubernetes ---------------------------------------------------------------
# Built inside the wrapper module tests/cluster/go/k8s (pins the staging
# modules).  The -X flags give the binaries a real version: without them
# /version reports v0.0.0-master, which confuses clients (helm, kubectl).
k8s_build() { # <cmd>
  local v="$TYCHO_K8S_VERSION" minor
  minor="${v#v1.}"; minor="${minor%%.*}"
  local x=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$TYCHO_CLUSTER_SCRIPTS/go/k8s" &&
    "$GO" build -p "$GO_P" -ldflags "$LDFLAGS_BASE$x" -o "$OUT/$1" "k8s.io/kubernetes/cmd/$1")
}

# --- etcd -------------------------------------------------------------------
etcd_build() {
  (cd "$TYCHO_CLUSTER_SCRIPTS/go/etcd" &&
    "$GO" build -p "$GO_P" -ldflags "$LDFLAGS_BASE" -o "$OUT/etcd" .)
}

# --- pause (the real node's sandbox process) ---------------------------------
pause_build() {
  (cd "$TYCHO_CLUSTER_SCRIPTS/go/pause" &&
    "$GO" build -p "$GO_P" -ldflags "$LDFLAGS_BASE" -o "$OUT/pause" .)
}

# --- tools installed straight from their own module (their go.mod/go.sum) ----
go_install() { # <package@version> [extra ldflags]
  GOBIN="$OUT" "$GO" install -p "$GO_P" -ldflags "$LDFLAGS_BASE ${2:-}" "$1"
}

want() { # is component $1 selected on the command line (or all)?
  [[ ${#SELECTED[@]} -eq 0 ]] && return 0
  local c; for c in "${SELECTED[@]}"; do [[ $c == "$1" ]] && return 0; done
  return 1
}
SELECTED=("$@")

# Control-plane pieces first (what up.sh needs), the teammates' tools last.
# Any failure stops the script (set -e) with the go command's error above.
if want etcd; then
  build_one "$TYCHO_BIN_ETCD" etcd etcd_build
fi
if want kubernetes; then
  # kubectl too: the machine's kubectl may be older than the server (skew).
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build_one "$TYCHO_BIN_K8S" "$cmd" k8s_build "$cmd"
  done
fi
if want kubelet; then
  # The real node (TYCHO_REAL_NODE=1, node.sh): the same module version as the
  # control plane, so node and API server never skew.
  build_one "$TYCHO_BIN_K8S" kubelet k8s_build kubelet
fi
if want pause; then
  build_one "$TYCHO_BIN_PAUSE" pause pause_build
fi
if want kwok; then
  build_one "$TYCHO_BIN_KWOK" kwok go_install "sigs.k8s.io/kwok/cmd/kwok@$TYCHO_KWOK_VERSION" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$TYCHO_KWOK_VERSION"
fi
if want minio; then
  # MINIO_UPDATE=off is set at run time; nothing in the build needs network
  # beyond the module proxy.
  build_one "$TYCHO_BIN_MINIO" minio go_install "github.com/minio/minio@$TYCHO_MINIO_VERSION"
fi
if want helm; then
  # Same -X flags as helm's Makefile: version, and the default Kubernetes
  # version used by `helm template`/`helm lint` (helm v3.22 is built against
  # client-go v0.37 -> 1.37; pass --kube-version to target our 1.34 cluster).
  helm_x="-X helm.sh/helm/v3/internal/version.version=$TYCHO_HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    helm_x+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=37"
  done
  build_one "$TYCHO_BIN_HELM" helm go_install "helm.sh/helm/v3/cmd/helm@$TYCHO_HELM_VERSION" "$helm_x"
fi
if want kubeconform; then
  build_one "$TYCHO_BIN_KUBECONFORM" kubeconform go_install \
    "github.com/yannh/kubeconform/cmd/kubeconform@$TYCHO_KUBECONFORM_VERSION" \
    "-X main.version=$TYCHO_KUBECONFORM_VERSION"
fi

if want cosign; then
  build_one "$TYCHO_BIN_COSIGN" cosign go_install "github.com/sigstore/cosign/v2/cmd/cosign@$TYCHO_COSIGN_VERSION"
fi

log "done in $(( $(date +%s) - TOTAL_START ))s; built: ${BUILT[*]:-nothing (all cached)}"
log "binaries under $TYCHO_CACHE/bin/"
