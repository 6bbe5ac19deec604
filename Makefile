# One entry point for humans and CI (.ci/run calls these targets).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The functions run on python3.12 in Lambda; the dev environment uses the same version.
PYTHON312 ?= $(shell (ls -d "$$(pyenv root 2>/dev/null)"/versions/3.12.*/bin/python3.12 2>/dev/null || command -v python3.12) | tail -n1)
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON := $(PYTHON312)
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Function bundles are built with the Lambda runtime's Python, the same interpreter as the venv.
export ORDERPIPE_BUNDLING_PYTHON := $(PYTHON312)
VENV_BIN := .venv/bin
# checkov (tests/infrastructure/test_checkov.py) in a virtualenv of its own: its pins conflict with ours.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov

.PHONY: help setup constraints lint format typecheck test test-unit test-integration test-infra test-e2e run synth bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install everything on a fresh machine (Python env, Node CLI, Cassandra jars, Toxiproxy)
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.8"
	$(UV) sync --frozen
	@# The `orderpipe` command belongs to the ops package; an older checkout's venv may have lost it.
	@test -x $(VENV_BIN)/orderpipe || $(UV) sync --frozen --reinstall-package orderpipe-ops
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	@if [ "$$($(CHECKOV_VENV)/bin/checkov --version 2>/dev/null)" != "$(CHECKOV_VERSION)" ]; then \
	   $(UV) venv --quiet --allow-existing $(CHECKOV_VENV) && \
	   $(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python "checkov==$(CHECKOV_VERSION)"; fi
	$(VENV_BIN)/orderpipe cassandra fetch
	@# Toxiproxy (built with Go) is needed by the fault-injection tests: under CI its absence fails set-up;
	@# elsewhere those tests are skipped, with this warning.
	@$(VENV_BIN)/orderpipe toxiproxy fetch || case "$${CI:-}" in 1|true|yes) exit 1;; \
	  *) echo "warning: no Toxiproxy; the fault-injection tests will be skipped" >&2;; esac

constraints: ## re-export functions/constraints.txt (bundle pins) from uv.lock
	@{ echo "# Versions for every package a function bundle may install, exported from uv.lock (make constraints)."; \
	   echo "# Bundling passes this to pip as --constraint, so transitive dependencies are pinned as in the lock."; \
	   $(UV) export --frozen --no-default-groups --no-hashes --no-emit-workspace --no-header --no-annotate; } > functions/constraints.txt

lint: ## ruff (lint + format check) and mypy
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy functions ops devenv testkit stacks tests benchmarks clients/python/orderpipe_client

format: ## apply ruff formatting and fixes
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

test: setup ## set up, lint, and run the whole test suite (what CI runs)
	$(MAKE) lint
	$(VENV_BIN)/pytest

test-unit: ## unit tests only (no network)
	$(VENV_BIN)/pytest tests/unit

test-integration: ## integration tests (real Cassandra, moto)
	$(VENV_BIN)/pytest tests/integration

test-infra: ## synthesized-template tests
	$(VENV_BIN)/pytest tests/infrastructure

test-e2e: ## end-to-end tests over HTTP against the local runtime
	$(VENV_BIN)/pytest tests/e2e

run: setup ## set up and run the whole pipeline locally
	$(VENV_BIN)/orderpipe run

synth: ## synthesize the CDK app offline into cdk.out/, for the example cluster of stacks/example_context.py
	@# cdk.json names no cluster (a deploy names yours: docs/deploy.md); the example values are passed here.
	eval "npx cdk synth --quiet $$($(VENV_BIN)/python -m stacks.example_context)"

bench: setup ## run the benchmark suite, results in benchmarks/results/
	$(VENV_BIN)/orderpipe bench

clean: ## remove build output
	rm -rf cdk.out .build .pytest_cache .mypy_cache .ruff_cache $(CHECKOV_VENV)
