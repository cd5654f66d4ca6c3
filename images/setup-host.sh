#!/usr/bin/env bash
# Make this machine able to build and run Tycho's images and a real test node
# (called by `make test`; safe and fast to run again):
#
#   - installs podman, buildah, runc, debootstrap, skopeo (images) and containerd,
#     containernetworking-plugins (the real node of the test cluster) with apt-get
#     when one of them is missing (apt-get update first);
#   - sets in /etc/containers/containers.conf what podman needs on hosts whose
#     cgroups are a v1/v2 hybrid or that may not raise ulimits, unless the file
#     already sets them:  [containers] default_ulimits = []   [engine] runtime = "runc"
#
# Needs root (or password-less sudo) only when something is missing. Anything else
# than Debian/Ubuntu: install those tools yourself; the script then only checks.
# TYCHO_SKIP_CONTAINERS=1 skips it all (the image and real-node tests then skip).
set -euo pipefail

[[ ${TYCHO_SKIP_CONTAINERS:-0} == 1 ]] && exit 0
log() { printf '[setup-host] %s\n' "$*" >&2; }

# command -> Debian package
declare -A PACKAGE=(
  [podman]=podman [buildah]=buildah [runc]=runc [debootstrap]=debootstrap [skopeo]=skopeo
  [containerd]=containerd [ctr]=containerd [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/lib/cni/host-local]=containernetworking-plugins
)
missing=()
for cmd in "${!PACKAGE[@]}"; do
  if [[ $cmd == /* ]]; then [[ -x $cmd ]] && continue
  else PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null && continue
  fi
  missing+=("${PACKAGE[$cmd]}")
done

SUDO=()
if (( EUID != 0 )); then SUDO=(sudo -n); fi
as_root() {
  if (( EUID != 0 )) && ! sudo -n true 2>/dev/null; then
    log "needs root to $*; run as root, or set TYCHO_SKIP_CONTAINERS=1 to skip the container tests"
    exit 1
  fi
  "${SUDO[@]}" "$@"
}

if (( ${#missing[@]} )); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  command -v apt-get >/dev/null || { log "missing: ${missing[*]} (no apt-get: install them yourself)"; exit 1; }
  log "installing ${missing[*]} (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# containers.conf: add a key under its [section] unless the key is set there already.
CONF="${TYCHO_CONTAINERS_CONF:-/etc/containers/containers.conf}"
conf_has() { # <section> <key>: the key is set (uncommented) inside the section
  [[ -f $CONF ]] && awk -v sec="[$1]" -v key="$2" '
    /^[[:space:]]*\[/ { gsub(/[[:space:]]/, ""); in_sec = ($0 == sec); next }
    in_sec && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { found = 1 }
    END { exit !found }' "$CONF"
}
conf_add() { # <section> <line>
  local tmp
  tmp="$(mktemp)"
  if [[ -f $CONF ]] && grep -Eq "^[[:space:]]*\[$1\][[:space:]]*$" "$CONF"; then
    awk -v sec="$1" -v line="$2" '
      { print }
      $0 ~ "^[[:space:]]*\\[" sec "\\][[:space:]]*$" { print line }' "$CONF" >"$tmp"
  else
    { [[ -f $CONF ]] && cat "$CONF"; printf '\n[%s]\n%s\n' "$1" "$2"; } >"$tmp"
  fi
  as_root install -D -m 0644 "$tmp" "$CONF"
  rm -f "$tmp"
}
if ! conf_has containers default_ulimits; then
  log "$CONF: [containers] default_ulimits = [] (ulimits cannot be raised here)"
  conf_add containers 'default_ulimits = []'
fi
if ! conf_has engine runtime; then
  log "$CONF: [engine] runtime = \"runc\""
  conf_add engine 'runtime = "runc"'
fi
