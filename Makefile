# lambdalet: two commands on a fresh machine.
#   make serve   install into .venv and run a node on 127.0.0.1:9000 with examples/hello deployed
#   make test    install what the tests need, then lint, type-check and test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint types pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/lambdalet serve --deploy examples/hello

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -n 2

test: lint types pytest

clean:
	rm -rf $(VENV) .lambdalet .mypy_cache .pytest_cache .ruff_cache
