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

# The HTML report is opened in a real headless browser by the tests: Debian's Chromium
# (as root, or through sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (echo "installing Chromium for the report's browser test" && \
	   ($(APT_INSTALL) >/dev/null 2>&1 || ($(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL) >/dev/null)))

test: $(STAMP) browser
	$(BIN)/ruff check palette_dask tests benchmarks workflows
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) palette-demo .pytest_cache .hypothesis
