#!/usr/bin/env bash
# Build the Tycho images, print their digests, optionally push them and pin the
# pipeline manifests to them.
#
#   images/build.sh [options] [operator] [stage-cpu] [stage-gpu]   (default: all three)
#
# Options:
#   --registry PREFIX   image name prefix (default: tycho -> tycho/operator, tycho/stage-cpu)
#                       e.g. ghcr.io/acme/tycho or localhost:5001/tycho
#   --tag TAG           image tag (default: the version in pyproject.toml)
#   --pipeline NAME     pipeline code baked into the stage images: pipelines/NAME/
#                       (default: digits)
#   --platform P        target platform, e.g. linux/amd64 (default: the builder's)
#   --push              push the images; their registry digests are then known
#   --pin               rewrite pipelines/*.yaml whose spec.code.path is the baked code:
#                       stage images -> NAME@sha256:DIGEST (needs --push: only a registry
#                       serves an image by digest) and spec.code.digest -> the code digest
#   --base IMAGE        base image with Python 3.11 (build argument PYTHON_IMAGE; default:
#                       the Dockerfiles' python:3.11-slim). images/base.sh makes one from
#                       Debian packages: localhost/tycho/python-base:3.11-bookworm
#   --if-changed        skip an image whose inputs (Dockerfile, lock files, tycho source,
#                       pipeline code, base image, build arguments) hash the same as those
#                       of the image already tagged REF (label dev.tycho.build.inputs);
#                       after a rebuild, remove the image it replaced
#   --dry-run           print the build commands instead of running them
#   -h, --help          this help
#
# Docker: `docker buildx build` when buildx is available, else `docker build` (BuildKit
# is needed either way: Docker >= 23). Podman (buildah): `podman build` with the
# Dockerfile's ignore file passed explicitly (buildah does not read
# <Dockerfile>.dockerignore) and the host's CA bundle mounted into RUN steps, so pip
# works behind a TLS-intercepting proxy; the image ID gets its sha256: prefix.
# Environment: DOCKER (default: docker when its daemon answers, else podman when installed), PYTHON (default
# .venv/bin/python, else python3) for the code digest, CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt, podman only; empty: none).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The engine: docker when its daemon answers, else podman when installed, else docker.
if [[ -z ${DOCKER:-} ]]; then
  DOCKER=docker
  if command -v podman >/dev/null && ! docker info >/dev/null 2>&1; then DOCKER=podman; fi
fi
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
if [[ -z ${PYTHON:-} ]]; then
  if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "build.sh: $*" >&2; exit 2; }

REGISTRY=tycho
TAG=""
PIPELINE=digits
PLATFORM=""
PUSH=0
PIN=0
DRY=0
BASE=""
IF_CHANGED=0
TARGETS=()
while (( $# )); do
  case $1 in
    --registry) REGISTRY="${2:?--registry needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --pipeline) PIPELINE="${2:?--pipeline needs a value}"; shift 2 ;;
    --platform) PLATFORM="${2:?--platform needs a value}"; shift 2 ;;
    --base) BASE="${2:?--base needs a value}"; shift 2 ;;
    --if-changed) IF_CHANGED=1; shift ;;
    --push) PUSH=1; shift ;;
    --pin) PIN=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    operator|stage-cpu|stage-gpu) TARGETS+=("$1"); shift ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
(( ${#TARGETS[@]} )) || TARGETS=(operator stage-cpu stage-gpu)
REGISTRY="${REGISTRY%/}"

# PYTHONPATH=operator: the digest code is plain stdlib, no install needed.
py() { PYTHONPATH="$ROOT/operator${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$@"; }

if [[ -z $TAG ]]; then
  TAG="$(py -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "$ROOT/pyproject.toml")"
fi
CODE_DIR="$ROOT/pipelines/$PIPELINE"
[[ -d $CODE_DIR ]] || die "no pipeline code at pipelines/$PIPELINE"
CODE_DIGEST="$(py -c 'import sys; from pathlib import Path; from tycho.provenance import code; print(code.digest(Path(sys.argv[1])))' "$CODE_DIR")"

if (( DRY )); then
  run() { printf '+'; printf ' %q' "$@"; printf '\n'; }
else
  run() { "$@"; }
fi
if (( ! DRY )); then
  command -v "$DOCKER" >/dev/null || die "$DOCKER not found (set DOCKER=...)"
fi
PODMAN=0
case "$(basename "$DOCKER")" in
  podman*|buildah*) PODMAN=1 ;;
  *) if (( ! DRY )) && "$DOCKER" --version 2>/dev/null | grep -qi podman; then PODMAN=1; fi ;;
esac
BUILDX=0
if (( ! DRY && ! PODMAN )) && "$DOCKER" buildx version >/dev/null 2>&1; then BUILDX=1; fi
if (( PIN && ! PUSH )); then
  echo "build.sh: --pin without --push: setting spec.code.digest only; stage images stay" \
       "referenced by tag (a local image cannot be pulled by digest)" >&2
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
declare -A DIGEST=()   # image name -> digest usable as NAME@DIGEST (pushed), or local id

# image_id <ref>: the local image ID as sha256:HEX (podman prints it without the prefix).
image_id() {
  local id
  id="$("$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null)" || return 1
  [[ $id == sha256:* ]] || id="sha256:$id"
  printf '%s\n' "$id"
}

# inputs_hash <file or dir>... -- <build args>...: what decides an image's content.
# Files as the build context sends them (the .dockerignore exclusions), the base image
# (its ID when it is local) and the build arguments.
inputs_hash() {
  local paths=()
  while [[ $1 != -- ]]; do [[ -e $ROOT/$1 ]] && paths+=("$1"); shift; done
  shift
  {
    printf '%s\n' "$@"
    [[ -n $BASE ]] && { image_id "$BASE" || echo "$BASE"; }
    (cd "$ROOT" && find "${paths[@]}" \( -name __pycache__ -o -name .ipynb_checkpoints -o -name .pytest_cache \
        -o -name .mypy_cache -o -name .git -o -name '*.egg-info' \) -prune \
        -o -type f ! -name '*.pyc' ! -name '*.pyo' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-32
}

build() { # <target>
  local target="$1" dockerfile ref meta args=() inputs=(pyproject.toml README.md operator images/build-requirements.txt)
  case $target in
    operator) dockerfile=images/operator/Dockerfile; inputs+=(images/operator) ;;
    stage-cpu) dockerfile=images/stage/Dockerfile; args+=(--build-arg VARIANT=cpu) ;;
    stage-gpu) dockerfile=images/stage/Dockerfile; args+=(--build-arg VARIANT=gpu) ;;
  esac
  if [[ $target == stage-* ]]; then
    args+=(--build-arg "PIPELINE=$PIPELINE" --build-arg "CODE_DIGEST=$CODE_DIGEST")
    inputs+=(images/stage/Dockerfile images/stage/Dockerfile.dockerignore images/stage/code_digest.py
             "images/stage/requirements-${target#stage-}.txt" images/stage/requirements-sbom.txt)
  fi
  args+=(--build-arg "VERSION=$TAG")
  [[ -n $BASE ]] && args+=(--build-arg "PYTHON_IMAGE=$BASE")
  [[ -n $PLATFORM ]] && args+=(--platform "$PLATFORM")
  ref="$REGISTRY/$target:$TAG"
  meta="$WORK/$target.json"
  local hash=""
  if (( IF_CHANGED && ! DRY )); then
    hash="$(inputs_hash "${inputs[@]}" -- "$target" "$PLATFORM" "${args[@]}")"
    args+=(--label "dev.tycho.build.inputs=$hash")
    if [[ $("$DOCKER" image inspect --format '{{index .Labels "dev.tycho.build.inputs"}}' "$ref" 2>/dev/null) == "$hash" ]] &&
       (( ! PUSH )); then
      echo "==> $ref: up to date (inputs $hash)" >&2
      DIGEST[$target]="$(image_id "$ref")"
      return 0
    fi
  fi
  echo "==> $ref ($dockerfile)" >&2
  local started=$SECONDS previous=""
  if (( IF_CHANGED && ! DRY )); then previous="$(image_id "$ref" || true)"; fi
  if (( PODMAN )); then
    args+=(--layers --ignorefile "$ROOT/$dockerfile.dockerignore")
    if [[ -n $CA_BUNDLE && -r $CA_BUNDLE ]]; then args+=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"); fi
    run "$DOCKER" build --file "$ROOT/$dockerfile" --tag "$ref" "${args[@]}" "$ROOT"
    (( PUSH )) && run "$DOCKER" push --digestfile "$WORK/$target.digest" "$ref"
  elif (( BUILDX || DRY )); then
    if (( PUSH )); then args+=(--push); else args+=(--load); fi
    run "$DOCKER" buildx build --file "$ROOT/$dockerfile" --tag "$ref" --metadata-file "$meta" \
      "${args[@]}" "$ROOT"
  else
    DOCKER_BUILDKIT=1 run "$DOCKER" build --file "$ROOT/$dockerfile" --tag "$ref" "${args[@]}" "$ROOT"
    (( PUSH )) && run "$DOCKER" push "$ref"
  fi
  (( DRY )) && { DIGEST[$target]="sha256:dry-run"; return 0; }
  echo "==> $ref: built in $((SECONDS - started))s" >&2
  # --if-changed keeps one image per tag: the one it replaced goes (when nothing uses it).
  if [[ -n $previous && $previous != "$(image_id "$ref")" ]]; then
    "$DOCKER" rmi "$previous" >/dev/null 2>&1 || true
  fi
  local digest=""
  if (( PUSH )); then
    if [[ -s $WORK/$target.digest ]]; then
      digest="$(cat "$WORK/$target.digest")"
    elif [[ -s $meta ]]; then
      digest="$(py -c 'import json,sys; print(json.load(open(sys.argv[1])).get("containerimage.digest",""))' "$meta")"
    fi
    if [[ -z $digest ]]; then   # docker build + push: the registry digest is a RepoDigest
      digest="$("$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$ref" |
                grep -F "$REGISTRY/$target@" | head -n1 | sed 's/.*@//')"
    fi
  else
    digest="$(image_id "$ref")"
  fi
  [[ $digest == sha256:* ]] || die "could not find the digest of $ref"
  DIGEST[$target]="$digest"
}

for t in "${TARGETS[@]}"; do build "$t"; done

echo
printf '%-12s %-45s %s\n' IMAGE REFERENCE DIGEST
for t in "${TARGETS[@]}"; do
  printf '%-12s %-45s %s%s\n' "$t" "$REGISTRY/$t:$TAG" "${DIGEST[$t]}" \
    "$( (( PUSH )) || echo '  (local image id)')"
done
echo "code digest of pipelines/$PIPELINE: $CODE_DIGEST"
if (( PUSH )); then
  echo "operator image for the chart: --set operator.image.repository=$REGISTRY/operator --set operator.image.digest=${DIGEST[operator]:-<not built>}"
fi

if (( PIN )); then
  pin_args=(--code-dir "$CODE_DIR" --code-digest "$CODE_DIGEST")
  if (( PUSH && ! DRY )); then
    for t in "${TARGETS[@]}"; do
      [[ $t == stage-* ]] && pin_args+=(--image "$REGISTRY/$t@${DIGEST[$t]}")
    done
  fi
  shopt -s nullglob
  manifests=("$ROOT"/pipelines/*.yaml)
  (( ${#manifests[@]} )) || die "no pipelines/*.yaml to pin"
  if (( DRY )); then
    run "$PYTHON" "$ROOT/images/pin.py" "${pin_args[@]}" "${manifests[@]}"
  else
    py "$ROOT/images/pin.py" "${pin_args[@]}" "${manifests[@]}"
  fi
fi
