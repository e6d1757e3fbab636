# postroom: `make run` serves, `make test` checks everything. Both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
ARGS   ?=

.PHONY: run test lint typecheck pytest system-deps bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(STAMP)

run: $(STAMP)
	$(BIN)/postroom serve $(ARGS)

# Debian packages the interop and browser tests drive (only when root and missing).
system-deps:
	@sh scripts/system-deps.sh

lint: $(TSTAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(TSTAMP)
	$(BIN)/mypy

pytest: $(TSTAMP) system-deps
	$(BIN)/python -m pytest -n 2 --dist loadfile $(ARGS)

test: lint typecheck pytest

bench: $(TSTAMP) system-deps
	$(BIN)/python benchmarks/run.py $(ARGS)

# The web UI's pictures in docs/screenshots/ (docs/ui.md), taken by the browser tests.
screenshots: $(TSTAMP) system-deps
	POSTROOM_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:xdist -q tests/browser

clean:
	rm -rf $(VENV) build dist src/*.egg-info
