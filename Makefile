# palette_dask: `make demo` and `make test` each make .venv, install the project, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/palette-dask demo

test: $(STAMP)
	$(BIN)/ruff check palette_dask tests benchmarks workflows
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) palette-demo .pytest_cache .hypothesis
