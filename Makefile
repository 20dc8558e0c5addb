# palette_dask: `make demo` and `make test` each make .venv, install the project, and run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast system clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/palette-dask demo

# Debian packages the tests use (as root, or through sudo): Chromium opens the HTML report,
# SLURM with munge runs a single-node cluster for the job-queue tests, and napari's viewer is drawn
# on an Xvfb display of the tests' own (tests/test_napari.py: Qt's xcb libraries, Mesa's llvmpipe).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
QT_PACKAGES := xvfb libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 \
	libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-shape0 libxcb-xkb1
PACKAGES := chromium slurm-wlm munge $(QT_PACKAGES)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(PACKAGES)
export PATH := $(PATH):/usr/sbin:/sbin

system:
	@if ! { command -v chromium || command -v chromium-browser; } >/dev/null || \
	    ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null || \
	    ! dpkg -s $(filter-out libglib2.0-0,$(QT_PACKAGES)) >/dev/null 2>&1 || \
	    ! ldconfig -p | grep -q 'libglib-2\.0\.so\.0 '; then \
	  echo "installing $(PACKAGES) for the tests"; \
	  ($(APT_INSTALL) >/dev/null 2>&1 || ($(SUDO) apt-get update -q >/dev/null && $(APT_INSTALL) >/dev/null)); \
	fi

# Every test, on two pytest-xdist workers, each running whole modules (their module-scoped SLURM, moto
# and clusters start once), the longest first (tests/conftest.py's LONGEST_FIRST); WORKERS=0 runs
# them in one process. Most tests wait on processes, servers and clusters, so two workers share 2
# cores well. Measured in benchmarks/RESULTS.md ("The test suite on two workers").
WORKERS ?= 2
XDIST := $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile --no-loadscope-reorder)

test: $(STAMP) system
	$(BIN)/ruff check palette_dask tests benchmarks workflows tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(XDIST)

# The day-to-day tier, under 3 minutes on 2 cores: the same checks, and every test but the slow ones
# and those that start SLURM, Chromium, moto's S3, worker processes or Xvfb (pyproject.toml's markers).
# `make test` runs them all, and stays CI's command.
FAST := not slow and not slurm and not browser and not s3 and not cluster and not display

test-fast: $(STAMP)
	$(BIN)/ruff check palette_dask tests benchmarks workflows tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(XDIST) -m "$(FAST)"

clean:
	rm -rf $(VENV) palette-demo .pytest_cache .hypothesis
