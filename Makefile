# postroom: `make run` serves, `make test` checks everything. Both work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
ARGS   ?=

.PHONY: run test lint typecheck pytest pytest-postgres system-deps bench screenshots fuzz clean

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

# The integration suites again with every test server on PostgreSQL (127.0.0.1:5432, started
# when down; a database per run). The contract suite (tests/contract) covers both backends in
# `pytest` already. test_testing_indexing is SQLite's: it drives the in-process indexer.
PG_SUITES := tests/integration/test_api_v1.py tests/integration/test_api_v2.py \
	tests/integration/test_api_events.py tests/integration/test_imap_server.py \
	tests/integration/test_pop3_server.py tests/integration/test_threads_api.py \
	tests/integration/test_testing_server.py tests/integration/test_testing_plugin.py \
	tests/integration/test_testing_webhooks.py tests/integration/test_testing_handlers.py \
	tests/integration/test_testing_chaos.py tests/integration/test_testing_shared.py \
	tests/integration/test_testing_cli.py tests/integration/test_mailpit_compat.py \
	tests/integration/test_metrics.py
pytest-postgres: $(TSTAMP) system-deps
	POSTROOM_TEST_DB=postgresql $(BIN)/python -m pytest -n 2 --dist loadfile $(PG_SUITES) $(ARGS)

test: lint typecheck pytest pytest-postgres

bench: $(TSTAMP) system-deps
	$(BIN)/python benchmarks/run.py $(ARGS)

# The web UI's pictures in docs/screenshots/ (docs/ui.md), taken by the browser tests.
screenshots: $(TSTAMP) system-deps
	POSTROOM_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:xdist -q tests/browser

# A longer fuzzing campaign than CI's (docs/security.md, "Fuzzing"): random seeds and
# FUZZ_EXAMPLES inputs per target (make fuzz FUZZ_EXAMPLES=100000).
FUZZ_EXAMPLES ?= 20000
fuzz: $(TSTAMP)
	POSTROOM_FUZZ=campaign POSTROOM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -n 2 \
		--timeout 0 -q tests/fuzz $(ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info
