# `make test` and `make demo` each bootstrap .venv on a fresh machine (Python 3.11+ and make only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench bench-quick cov clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,speed]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

cov: $(STAMP)
	$(BIN)/python -m pytest -q --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/connman demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
