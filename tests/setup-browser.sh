#!/usr/bin/env bash
# Installs the headless browser the board's tests drive: Debian's chromium at /usr/bin/chromium
# (Playwright's own browser download cannot be used here; the Python package drives this one).
# Idempotent: does nothing when the browser is there. Called by `make test` (target `browser`).
set -euo pipefail
BROWSER=${TYCHO_CHROMIUM:-/usr/bin/chromium}
if [ -x "$BROWSER" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-browser: $BROWSER is missing and there is no apt-get; install Chromium and set TYCHO_CHROMIUM" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
echo "setup-browser: installing chromium (Debian package) for the board's browser tests" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium fonts-dejavu-core
