# lambdalet: two commands on a fresh machine.
#   make serve   install into .venv and run a node on 127.0.0.1:9000 with examples/hello deployed
#   make test    install what the tests need, then lint, type-check and test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: serve test lint types pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml scripts/install-test-deps.sh | $(BIN)/python
	bash scripts/install-test-deps.sh
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.serve-installed
	$(BIN)/lambdalet serve --deploy examples/hello

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(VENV)/.test-installed
	$(BIN)/mypy

pytest: $(VENV)/.test-installed
	$(BIN)/pytest -n 2

test: lint types pytest

clean:
	rm -rf $(VENV) .lambdalet .mypy_cache .pytest_cache .ruff_cache
