#!/usr/bin/env bash
# Build (once) cosign, a standard verifier of DSSE/in-toto attestations, from its Go module:
# the test that a standard tool accepts Tycho's signed records runs it. Cached under
# $TYCHO_CACHE/bin/cosign-<version>/cosign like the test control plane's binaries. First
# build: ~5 min of CPU on 2 cores (plus module downloads); afterwards < 1 s.
set -euo pipefail
VERSION="${TYCHO_COSIGN_VERSION:-v2.6.5}"
CACHE="${TYCHO_CACHE:-$HOME/.cache/tycho}"
DEST="$CACHE/bin/cosign-$VERSION"
if [[ -x "$DEST/cosign" ]]; then
  echo "$DEST/cosign"
  exit 0
fi
mkdir -p "$DEST"
exec 9>"$CACHE/bin/.cosign.lock"
flock 9
if [[ ! -x "$DEST/cosign" ]]; then
  OUT="$(mktemp -d "$DEST/.tmp.XXXXXX")"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath GOMAXPROCS="${GOMAXPROCS:-2}" GOBIN="$OUT" \
    go install -p 2 -ldflags "-s -w" "github.com/sigstore/cosign/v2/cmd/cosign@$VERSION" >&2
  mv -f "$OUT/cosign" "$DEST/cosign"
  rm -rf "$OUT"
fi
echo "$DEST/cosign"
