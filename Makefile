# Tycho developer entry points. Everything installs into .venv inside the repo.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: browser venv demo test verify test-unit test-cluster host-setup images cluster-build cluster-up cluster-down cluster-smoke bench clean crd

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install -q 'uv>=0.4,<1'
	# Bytecode compiled once here (~20 s): where PYTHONDONTWRITEBYTECODE is set, nothing
	# else writes it, and every tycho command would compile its imports again.
	$(UV) pip install -q --compile-bytecode --python $(BIN)/python -e '.[ml,dev,board]'
	$(BIN)/python -m compileall -q operator/tycho >/dev/null
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

## demo: set up and run the reference pipeline (digits) end to end on this machine
demo: venv
	$(BIN)/tycho run pipelines/digits.yaml

## test: set up, check the shape (verify), build what the tests run (control plane, tools, images: cached), run the whole suite
test: venv verify host-setup cluster-build images browser
	bash tests/run.sh

## verify: ruff, mypy --strict, the import-linter layer contracts, and no drift between the API models and the committed CRD
verify: venv
	$(BIN)/ruff check operator tests benchmarks pipelines
	$(BIN)/mypy operator/tycho tests
	$(BIN)/lint-imports
	$(BIN)/tycho crd | diff -u charts/tycho/files/crd.yaml - || { echo "the CRD drifted from tycho.api.models: run make crd" >&2; exit 1; }
	$(BIN)/tycho crd --admission-rules | diff -u charts/tycho/files/manifest-rules.yaml - || { echo "the admission rules drifted from tycho.api.rules: run make crd" >&2; exit 1; }

## host-setup: podman, buildah, debootstrap, containerd, CNI plugins (apt, when missing) and containers.conf
host-setup:
	bash images/setup-host.sh

## images: the Debian-built Python base, then the operator and stage-cpu images (podman; skipped when up to date)
images: host-setup
	bash images/base.sh
	DOCKER=podman bash images/build.sh --base localhost/tycho/python-base:3.11-bookworm --if-changed operator stage-cpu

## browser: the headless Chromium the board's browser tests drive (Debian package, installed once)
browser:
	bash tests/setup-browser.sh

test-unit: venv
	$(BIN)/python -m pytest tests/unit

## cluster-build: build etcd, kube-apiserver, controller-manager, scheduler, kwok, MinIO, helm (cached)
cluster-build:
	bash tests/cluster/build.sh

## cluster-up: start the local control plane; kubeconfig in .cluster/kubeconfig
cluster-up: cluster-build
	bash tests/cluster/up.sh

cluster-down:
	bash tests/cluster/down.sh

cluster-smoke:
	bash tests/cluster/smoke.sh

crd: venv
	$(BIN)/tycho crd > charts/tycho/files/crd.yaml
	$(BIN)/tycho crd --admission-rules > charts/tycho/files/manifest-rules.yaml

clean:
	rm -rf $(VENV) .tycho .pytest_cache

## test-cluster: only the operator's tests on the local control plane
test-cluster: venv cluster-build
	$(BIN)/python -m pytest tests/cluster
