# Tycho developer entry points. Everything installs into .venv inside the repo.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv demo test test-unit test-e2e test-cluster cluster-up cluster-down bench clean crd

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(BIN)/python -m pip install -q 'uv>=0.4,<1'
	$(UV) pip install -q --python $(BIN)/python -e '.[ml,dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

## demo: set up and run the reference pipeline (digits) end to end on this machine
demo: venv
	$(BIN)/tycho run pipelines/digits.yaml

## test: set up and run the whole test suite
test: venv
	$(BIN)/python -m pytest tests

test-unit: venv
	$(BIN)/python -m pytest tests/unit

crd: venv
	$(BIN)/tycho crd > charts/tycho/crds/experimentpipelines.tycho.dev.yaml

clean:
	rm -rf $(VENV) .tycho .pytest_cache
