# `make test`, `make demo`, `make docs` and `make package-check` each bootstrap .venv on a fresh machine
# (Python 3.11+ and make only).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint docs bench bench-quick cov package-check clean

# The editable install also compiles connman._speedups in place (hatch_build.py): rebuilt when its
# source changes.
$(STAMP): pyproject.toml hatch_build.py src/connman/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,speed]'
	touch $(STAMP)

BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,speed,bench]'
	touch $(BENCH_STAMP)

# The whole suite, then the data path's tests again with the Python form of connman._datapath
# (CONNMAN_PURE_PYTHON=1): the C form is the default, the Python one the fallback and reference.
test: $(STAMP)
	$(BIN)/python -m pytest -q
	CONNMAN_PURE_PYTHON=1 $(BIN)/python -m pytest -q -p no:cacheprovider $(PURE_PYTHON_TESTS)

PURE_PYTHON_TESTS := tests/aio tests/sync tests/test_datapath.py

cov: $(STAMP)
	$(BIN)/python -m pytest -q --cov --cov-report=term

demo: $(STAMP)
	$(BIN)/connman demo

# The full benchmark (about 17 minutes on 2 cores); writes the W5/W6 plots into docs/img.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --plots docs/img

# A reduced run that checks the benchmark works (CI runs it); no timing assertions.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,speed,docs]'
	touch $(DOCS_STAMP)

# Rewrites the generated tables of docs/options.md from the declarations in connman._options, then
# builds the site into site/ in strict mode: a broken link or anchor, or a public name without a
# docstring, fails it.
docs: $(DOCS_STAMP)
	$(BIN)/python tests/test_options_doc.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

PACKAGE_STAMP := $(VENV)/.package-installed
$(PACKAGE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,speed,package]'
	touch $(PACKAGE_STAMP)

# Builds the sdist and wheel, checks them, and tries the wheel in a fresh venv (as a user installs it).
package-check: $(PACKAGE_STAMP)
	PYTHON=$(BIN)/python .ci/package-check

# mypy checks tools/mkdocs_hooks.py too, against the docs extra: lint installs it.
lint: $(DOCS_STAMP)
	$(BIN)/ruff check src tests examples bench tools hatch_build.py
	$(BIN)/ruff format --check src tests examples bench tools hatch_build.py
	$(BIN)/mypy

clean:
	rm -rf $(VENV) src/connman/_speedups*.so site dist .pytest_cache .mypy_cache .ruff_cache .coverage bench/.build bench/.node bench/.results
