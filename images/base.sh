#!/usr/bin/env bash
# Make a Python base image from Debian packages, for machines that cannot pull
# python:3.11-slim (no registry reachable) or that want a base built from a
# Debian mirror only:
#
#   images/base.sh [--tag REF] [--mirror URL] [--force]
#   images/build.sh --base localhost/tycho/python-base:3.11-bookworm ...
#
# debootstrap --variant=minbase bookworm + python3 (3.11), python3-venv, python3-pip,
# python-is-python3 (`python`), ca-certificates, passwd (useradd); apt lists, docs
# (copyright files stay), man pages and caches are dropped; the tree is imported
# as one layer with `podman import` (or `docker import`).
#
# Cached: the image carries a label with the hash of its inputs (this script, the
# suite, the mirror, the package list); when an image with that tag and label
# exists, nothing is done (--force rebuilds). Needs root (debootstrap) and about
# 75 s on first use.
#
# Options:
#   --tag REF       image reference (default localhost/tycho/python-base:3.11-bookworm)
#   --mirror URL    Debian mirror (default: the first deb.debian.org-style URI in
#                   /etc/apt/sources.list{,.d/*} that serves the suite, else
#                   http://deb.debian.org/debian)
#   --force         rebuild even when the cached image matches
#   --print-tag     print the image reference and exit
#   -h, --help      this help
# Environment: DOCKER (default: docker when its daemon answers, else podman when installed).
set -euo pipefail

SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
TAG=localhost/tycho/python-base:3.11-$SUITE
MIRROR=""
FORCE=0
PRINT=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "base.sh: $*" >&2; exit 2; }
log() { printf '[base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while (( $# )); do
  case $1 in
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --mirror) MIRROR="${2:?--mirror needs a value}"; shift 2 ;;
    --force) FORCE=1; shift ;;
    --print-tag) PRINT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if (( PRINT )); then echo "$TAG"; exit 0; fi

# The engine: docker when its daemon answers, else podman when installed, else docker.
if [[ -z ${DOCKER:-} ]]; then
  DOCKER=docker
  if command -v podman >/dev/null && ! docker info >/dev/null 2>&1; then DOCKER=podman; fi
fi
command -v "$DOCKER" >/dev/null || die "$DOCKER not found (set DOCKER=...)"

# The mirror the host's apt uses (deb822 "URIs:" or one-line "deb URL suite").
host_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
           -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' "$f"
  done | grep -E '/debian/?$' | head -n1
}
[[ -n $MIRROR ]] || MIRROR="$(host_mirror || true)"
[[ -n $MIRROR ]] || MIRROR=http://deb.debian.org/debian

INPUTS="$( { cat "${BASH_SOURCE[0]}"; echo "$SUITE $MIRROR $PACKAGES"; } | sha256sum | cut -c1-16)"
if (( ! FORCE )); then
  have="$("$DOCKER" image inspect --format '{{index .Labels "dev.tycho.base.inputs"}}' "$TAG" 2>/dev/null || true)"
  if [[ $have == "$INPUTS" ]]; then
    log "$TAG: cached (inputs $INPUTS)"
    exit 0
  fi
fi

(( EUID == 0 )) || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"

START=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/tycho-base.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"
log "debootstrap $SUITE from $MIRROR (+ $PACKAGES)"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORK/debootstrap.log" >&2
  die "debootstrap failed"
}

# What an image does not need. Copyright files stay (licences of what is shipped).
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
       "$ROOTFS"/var/log/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/usr/share/lintian "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -not -name 'C.*' -exec rm -rf {} +
find "$ROOTFS/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} +
# The image's own mirror configuration (the one it was made from), and an apt that
# does not reinstall what was dropped above.
printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/tycho-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
# Debian's python marks the system environment as externally managed; images install
# into virtual environments, as the official image's users do.

log "importing into $DOCKER as $TAG"
version="$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
tar --numeric-owner --sort=name -C "$ROOTFS" -cf - . |
  "$DOCKER" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL dev.tycho.base.inputs=$INPUTS" \
    --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with Python $version, venv and pip\"" \
    --change "LABEL dev.tycho.base.python=$version" \
    - "$TAG" >/dev/null
log "$TAG: Python $version, $("$DOCKER" image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'), built in $((SECONDS - START))s"
