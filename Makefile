# The two commands of the README: `make demo` and `make test`. Everything is installed into
# .venv by this file; the machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit clean soak bench

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

test: lint typecheck
	$(BIN)/pytest -q

# The long runs of the hostile-input and fault suites: minutes of coverage-guided fuzzing,
# hundreds of generated API calls per operation, repeated crash rounds under traffic.
soak: $(VENV)/.test
	GATEWAY_FUZZ_SECONDS=300 GATEWAY_OPENAPI_EXAMPLES=200 GATEWAY_SOAK=1 \
		$(BIN)/pytest -q -m "attack or fault" -p no:cacheprovider

# End-to-end throughput and latency against the cryptographic and TLS floors, measured in one
# run; writes benchmarks/RESULTS.md and benchmarks/results.json.
bench: $(VENV)/.runtime
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
