# palette_dask: `make demo` and `make test` each make .venv, install the project, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/palette-dask demo

# The HTML report is opened in a real headless browser by the tests: Debian's Chromium.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (echo "installing Chromium for the report's browser test" && \
	   (DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null)))

test: $(STAMP) browser
	$(BIN)/ruff check palette_dask tests benchmarks workflows
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) palette-demo .pytest_cache .hypothesis
