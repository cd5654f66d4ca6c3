# shellcheck shell=bash
# Shared settings for the local test cluster (tests/cluster/*.sh).
#
# Source it, don't run it:   source tests/cluster/env.sh
# It only sets variables (no side effects), so tests and teammates can also
# source it to get helm/kubeconform/kwok on PATH and, when a cluster is up,
# KUBECONFIG plus the S3 credentials of the local MinIO.

# --- pinned versions --------------------------------------------------------
# The k8s and etcd versions must match tests/cluster/go/{k8s,etcd}/go.mod
# (build.sh checks that).  Only versions whose module is both on the Go
# proxy and in the checksum database can be used (k8s v1.34.11/12 are on
# the proxy but not in sum.golang.org, so v1.34.10 is the newest usable 1.34).
TYCHO_K8S_VERSION=v1.34.10
TYCHO_ETCD_VERSION=v3.6.16
TYCHO_KWOK_VERSION=v0.8.0
# MinIO publishes RELEASE.* tags, not semver, so the proxy only knows it by
# pseudo-version: this is the last commit of the community repo (2026-02-12).
TYCHO_MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
TYCHO_HELM_VERSION=v3.22.0
TYCHO_KUBECONFORM_VERSION=v0.8.0
# cosign: the standard verifier the trust test runs on Tycho's signed records.
TYCHO_COSIGN_VERSION=v2.6.5
# The real node's pause process (go/pause); bump when main.go changes.
TYCHO_PAUSE_VERSION=1

# --- locations --------------------------------------------------------------
TYCHO_CLUSTER_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TYCHO_REPO_ROOT="$(cd "$TYCHO_CLUSTER_SCRIPTS/../.." && pwd)"
# Binaries are cached outside the repo, one directory per component version,
# so a version bump rebuilds only what changed and old worktrees keep working.
TYCHO_CACHE="${TYCHO_CACHE:-$HOME/.cache/tycho}"
TYCHO_BIN_K8S="$TYCHO_CACHE/bin/kubernetes-$TYCHO_K8S_VERSION"
TYCHO_BIN_ETCD="$TYCHO_CACHE/bin/etcd-$TYCHO_ETCD_VERSION"
TYCHO_BIN_KWOK="$TYCHO_CACHE/bin/kwok-$TYCHO_KWOK_VERSION"
TYCHO_BIN_MINIO="$TYCHO_CACHE/bin/minio-$TYCHO_MINIO_VERSION"
TYCHO_BIN_HELM="$TYCHO_CACHE/bin/helm-$TYCHO_HELM_VERSION"
TYCHO_BIN_KUBECONFORM="$TYCHO_CACHE/bin/kubeconform-$TYCHO_KUBECONFORM_VERSION"
# shellcheck disable=SC2034  # used by build.sh
TYCHO_BIN_COSIGN="$TYCHO_CACHE/bin/cosign-$TYCHO_COSIGN_VERSION"
# shellcheck disable=SC2034  # used by build.sh and node.sh
TYCHO_BIN_PAUSE="$TYCHO_CACHE/bin/pause-$TYCHO_PAUSE_VERSION"
# Runtime state of a running cluster (git-ignored via `.cluster/`).
TYCHO_CLUSTER_DIR="${TYCHO_CLUSTER_DIR:-$TYCHO_REPO_ROOT/.cluster}"

export TYCHO_CACHE TYCHO_CLUSTER_DIR

# Put the cached tools first on PATH (idempotent when sourced twice).
for _tycho_d in "$TYCHO_BIN_HELM" "$TYCHO_BIN_KUBECONFORM" "$TYCHO_BIN_KWOK" \
                "$TYCHO_BIN_MINIO" "$TYCHO_BIN_ETCD" "$TYCHO_BIN_K8S"; do
  case ":$PATH:" in *":$_tycho_d:"*) ;; *) PATH="$_tycho_d:$PATH" ;; esac
done
unset _tycho_d
export PATH

# When a cluster is up, point kubectl/clients at it and expose S3 settings.
if [[ -f "$TYCHO_CLUSTER_DIR/kubeconfig" ]]; then
  export KUBECONFIG="$TYCHO_CLUSTER_DIR/kubeconfig"
fi
if [[ -f "$TYCHO_CLUSTER_DIR/s3.env" ]]; then
  set -a
  # shellcheck disable=SC1091
  source "$TYCHO_CLUSTER_DIR/s3.env"
  set +a
fi
