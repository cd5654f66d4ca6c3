#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it.
#
# One test control plane for every test process (tests/cluster/up.sh; binaries cached),
# the tests spread over pytest-xdist workers by file (a file's fixtures are built once), then
# the tests marked `alone` (they stop part of the cluster: MinIO) with nothing beside them.
# A skipped test fails (--no-skips): here every tool is installed, so a skip is a broken setup.
#
#   bash tests/run.sh [PYTEST ARGS...]      TYCHO_TEST_WORKERS=N (default 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
WORKERS="${TYCHO_TEST_WORKERS:-3}"

source tests/cluster/env.sh
if [[ -f .cluster/kubeconfig ]] && kubectl --kubeconfig .cluster/kubeconfig get --raw /readyz >/dev/null 2>&1; then
  echo "using the test cluster that is running (.cluster/); it keeps running afterwards"
else
  bash tests/cluster/up.sh
  trap 'bash tests/cluster/down.sh >/dev/null 2>&1 || true' EXIT
fi

status=0
"$PY" -m pytest tests --no-skips -n "$WORKERS" --dist loadfile -m "not alone" --durations=25 "$@" || status=$?
alone=0
"$PY" -m pytest tests --no-skips -m alone --durations=5 "$@" || alone=$?
if [[ $alone -ne 0 && $alone -ne 5 ]]; then status=$alone; fi  # 5: none selected by the arguments
exit "$status"
