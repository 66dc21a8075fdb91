# Rotor: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install binaries demo demo-check test test-unit test-integration test-e2e lint crds bench perf-docs clean

help:
	@echo "make demo        run the embedded demo (local Kubernetes, Vault, AWS emulator, operator, examples)"
	@echo "make test        run the whole test suite (unit + integration against real servers)"
	@echo "make test-unit   unit tests only (seconds, no servers; the chart tests need helm, else left out)"
	@echo "make test-e2e    the suite against an existing cluster: ROTOR_TEST_KUBECONFIG=~/.kube/config"
	@echo "make lint        ruff, mypy and the import-linter layer contract"
	@echo "make crds        regenerate crds/ and docs/reference/ from the pydantic models"
	@echo "make bench       the benchmark suite (bench/)"

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# kube-apiserver, kube-controller-manager, kubectl, etcd, Vault and helm, built once from Go
# modules into ~/.cache/rotor (the first time takes a while: the script says what it is doing)
binaries:
	bash hack/build-binaries.sh all

demo: install binaries
	$(VENV)/bin/rotor demo

demo-check: install binaries
	$(VENV)/bin/rotor demo --check

test: install binaries
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Unit tests need no server. Only tests/unit/test_chart.py needs a binary (helm, to render the
# chart): without one, and outside CI, it is left out with a message saying how to build it. CI (CI
# set, as GitHub Actions and .ci/run do) always runs it, and fails if helm is missing.
HELM_FOUND = $(shell { test -n "$$ROTOR_HELM" || command -v helm || ls $${ROTOR_CACHE_DIR:-$$HOME/.cache/rotor}/helm-*/helm; } >/dev/null 2>&1 && echo yes)

test-unit: install
ifeq ($(HELM_FOUND)$(CI),)
	@echo "make test-unit: no helm binary, so tests/unit/test_chart.py is left out (build it with 'hack/build-binaries.sh helm' or 'make binaries'; CI always runs it)"
	$(PY) -m pytest tests/unit --ignore=tests/unit/test_chart.py $(PYTEST_ARGS)
else
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)
endif

test-integration: install binaries
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: install
	@test -n "$$ROTOR_TEST_KUBECONFIG" || { echo "set ROTOR_TEST_KUBECONFIG to the cluster's kubeconfig"; exit 2; }
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crds: install
	$(PY) -m rotor.api.crdgen

bench: install binaries
	$(PY) bench/run.py --sizes 1000 5000 --runs 1 --aws-sizes 1000 --restart-sizes 5000 \
	    --json bench/results/$$(date +%F)-$$(uname -m)-$$(nproc)cores-default.json

# docs/performance.md from the raw results committed under bench/results/
perf-docs: install
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
