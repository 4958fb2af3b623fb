# Set-up and everyday commands. `make demo` and `make test` are all a new machine needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo serve test lint typecheck pytest fuzz bench install clean compat

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/equa demo --host $(HOST) --port $(PORT)

serve: $(STAMP)
	$(BIN)/equa db upgrade
	$(BIN)/equa serve --host $(HOST) --port $(PORT)

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
	rm -rf $(VENV) $(COMPAT) .pytest_cache .mypy_cache .ruff_cache
