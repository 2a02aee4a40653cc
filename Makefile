# The two commands of the README: `make demo` and `make test`. Everything is installed into
# .venv by this file; the machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-postgres lint typecheck unit clean soak bench

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(VENV)/.runtime
	$(BIN)/gateway demo

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.test
	$(BIN)/mypy

# The whole suite on SQLite, then, when a PostgreSQL server is named (.ci/run names the local
# one when it answers), the integration suite again with every gateway on PostgreSQL.
test: lint typecheck
	$(BIN)/pytest -q
	@if [ -n "$$GATEWAY_TEST_POSTGRES_URL" ]; then \
		$(MAKE) --no-print-directory test-postgres; \
	else \
		echo "PostgreSQL suite not run: set GATEWAY_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:port/db"; \
	fi

# The integration suite (and the store's PostgreSQL tests) with every gateway on a fresh
# PostgreSQL database of its own, on the server GATEWAY_TEST_POSTGRES_URL names (the tests
# create and drop the databases): e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test
# The wheel test is left out: its demo network is the installed wheel's own, on SQLite.
test-postgres: $(VENV)/.test
	@test -n "$$GATEWAY_TEST_POSTGRES_URL" || { echo "set GATEWAY_TEST_POSTGRES_URL=postgresql+asyncpg://user@host:port/db"; exit 2; }
	GATEWAY_TEST_DATABASE=postgres $(BIN)/pytest -q -m "not wheel" tests/integration tests/unit/test_store.py tests/unit/test_leader.py

# The long runs of the hostile-input and fault suites: minutes of coverage-guided fuzzing,
# hundreds of generated API calls per operation, repeated crash rounds under traffic.
soak: $(VENV)/.test
	GATEWAY_FUZZ_SECONDS=300 GATEWAY_OPENAPI_EXAMPLES=200 GATEWAY_SOAK=1 \
		$(BIN)/pytest -q -m "attack or fault" -p no:cacheprovider

# End-to-end throughput and latency against the cryptographic and TLS floors, measured in one
# run; writes benchmarks/RESULTS.md and benchmarks/results.json.
$(VENV)/.bench: pyproject.toml $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	@touch $@

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
