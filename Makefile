# Set-up and everyday commands. `make demo` and `make test` are all a new machine needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# `make demo DEMO_FLAGS=--multi-tenant`: the demo in multi-tenant mode (two tenants, two organizations).
DEMO_FLAGS ?=

# Exact versions: requirements/runtime.txt (the service) and requirements/dev.txt (plus tests and tools), made by
# pip-compile from pyproject.toml with `make lock`. Installs use them, so every machine runs the same versions.
RUNTIME_LOCK := requirements/runtime.txt
DEV_LOCK := requirements/dev.txt
# The production install lives in a venv of its own, so it holds the runtime dependencies and nothing else.
PROD_VENV ?= .venv-prod
PROD_BIN := $(PROD_VENV)/bin
PROD_STAMP := $(PROD_VENV)/.installed
PIP_TOOLS := pip-tools==7.6.2

# Tests run on every core (pytest-xdist), each module's tests on one worker; Redis tests take turns (tests/conftest.py).
PYTEST_ARGS ?= -n auto --dist loadscope

.PHONY: demo serve test lint typecheck pytest fuzz bench install install-prod lock screenshots clean compat

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(DEV_LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# A production install: the runtime dependencies only, at the locked versions, and equa from this checkout
# (editable, so `git pull` plus a restart is an upgrade of the code; see docs/operations.md).
$(PROD_BIN)/python:
	$(PY) -m venv $(PROD_VENV)
	$(PROD_BIN)/pip install --quiet --upgrade pip

$(PROD_STAMP): pyproject.toml $(RUNTIME_LOCK) | $(PROD_BIN)/python
	$(PROD_BIN)/pip install --quiet -r $(RUNTIME_LOCK)
	$(PROD_BIN)/pip install --quiet --no-deps -e .
	touch $(PROD_STAMP)

install-prod: $(PROD_STAMP)

# Regenerate both lockfiles from pyproject.toml (after changing a dependency, or to take newer versions).
lock: | $(BIN)/python
	$(BIN)/pip install --quiet $(PIP_TOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --upgrade --strip-extras --no-emit-index-url \
		--no-emit-find-links --no-emit-options -o $(RUNTIME_LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --upgrade --strip-extras --no-emit-index-url \
		--no-emit-find-links --no-emit-options --extra dev -c $(RUNTIME_LOCK) -o $(DEV_LOCK) pyproject.toml

demo: $(STAMP)
	$(BIN)/equa demo --host $(HOST) --port $(PORT) $(DEMO_FLAGS)

serve: $(PROD_STAMP)
	$(PROD_BIN)/equa db upgrade
	$(PROD_BIN)/equa serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	@source scripts/test-services.sh && $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck
	@scripts/ensure-browser.sh
	@source scripts/test-services.sh && $(BIN)/pytest $(PYTEST_ARGS)

# Refresh the README's screenshots (docs/screenshots) from the browser tests that take them; `make test` writes
# its own to test-results/screenshots, outside the tracked tree.
screenshots: $(STAMP)
	@scripts/ensure-browser.sh
	@source scripts/test-services.sh && EQUA_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/e2e

fuzz: $(STAMP)
	@source scripts/test-services.sh && EQUA_FUZZ_EXAMPLES=2000 $(BIN)/pytest tests/fuzz -p no:cacheprovider

# Microsoft's Graph SDK (several hundred MB) against the emulator, from its own environment.
COMPAT := .venv-compat
$(COMPAT)/.installed: pyproject.toml
	$(PY) -m venv $(COMPAT)
	$(COMPAT)/bin/pip install --quiet --upgrade pip
	# msgraph-core imports `deprecated` without declaring it.
	$(COMPAT)/bin/pip install --quiet -e . msgraph-sdk azure-identity deprecated pytest pytest-asyncio pytest-timeout
	touch $(COMPAT)/.installed

compat: $(COMPAT)/.installed
	$(COMPAT)/bin/pytest tests/compat -v --confcutdir=tests/compat

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(PROD_VENV) $(COMPAT) .pytest_cache .mypy_cache .ruff_cache
