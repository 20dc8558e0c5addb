"""Shared fixtures (real dask clusters, real rasters, Chromium) and the hook that sorts tests into tiers.

Helpers that are not fixtures live in helpers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import REAL_RASTERS, dask_scheduler

from palette_dask import connect


@pytest.fixture(scope="session")
def client():
    """A real LocalCluster on threads (2 workers), shared by the session."""
    with connect(processes=False, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c:
        yield c


@pytest.fixture(scope="session")
def process_client():
    """A real process-based LocalCluster (2 worker processes)."""
    with connect(processes=True, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c:
        yield c


# napari's pytest plugin (its pytest11 entry point, loaded in every test process) has autouse fixtures
# that import napari's Qt window (8 s, 200 MB, in the first test of each process) and replace logging's
# record factory for the session (a numpy int as %d then prints "--- Logging error ---"). These
# no-ops of the same names replace them; test_napari.py imports napari's own, for its tests only.
@pytest.fixture
def _clean_themes():
    """No-op: napari's (theme clean-up) applies in test_napari.py only."""


@pytest.fixture
def _disable_qt_warnings():
    """No-op: napari's (imports its Qt main window) applies in test_napari.py only."""


@pytest.fixture(scope="session")
def use_leak_safe_log_records():
    """No-op: napari's (logging's record factory replaced) applies in test_napari.py only."""


@pytest.fixture(scope="session")
def real_rasters() -> Path:
    """The real rasters the repository carries in tests/data (see its README for provenance)."""
    return REAL_RASTERS


@pytest.fixture(scope="session")
def remote_cluster(tmp_path_factory):
    """A scheduler and two worker processes started with distributed's own commands, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("cluster")
    with dask_scheduler(folder) as (address, start_worker, _):
        for _ in range(2):
            start_worker("--nthreads", "1", "--nworkers", "1")
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, headless: `make test` installs it (apt-get install chromium)."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.fail("the report's browser test needs Chromium: run `make test`, or apt-get install chromium")
    return found


#: Tiers by the fixtures a test uses, directly or through other fixtures (pyproject.toml declares the
#: markers; `make test-fast` leaves out every tier but the day-to-day one).
TIERS_BY_FIXTURE = {
    "slurm": "slurm",  # test_slurm.py: munged, slurmctld and slurmd started for the session (tests/slurm.py)
    "s3": "s3",  # test_remote.py: moto's S3 server holding the inputs
    "bucket": "s3",  # test_object_store.py: moto's S3 server holding the store
    "chromium": "browser",
    "process_client": "cluster",  # worker processes
    "remote_cluster": "cluster",  # `dask scheduler` and `dask worker` processes
    "cluster": "cluster",  # test_workers_leave.py: the same, retired, restarted and killed
    "headless": "display",  # test_napari.py: Xvfb, Qt on it (under pytest-qt's qapp, qtbot, napari's viewer)
}


#: The modules that take longest, longest first (seconds on 2 loaded cores, from a full run's
#: --junitxml): `make test` runs them first, each whole on one of its two pytest-xdist workers
#: (--dist loadfile), so that the short modules that follow even out the two workers' ends.
LONGEST_FIRST = [
    "test_reliability.py",  # 450
    "test_workers_leave.py",  # 430
    "test_slurm.py",  # 260
    "test_object_store.py",  # 230
    "test_remote.py",  # 200
    "test_faults_http.py",  # 155
    "test_faults_s3.py",  # 155
    "test_memory_limit.py",  # 130
    "test_clusters.py",  # 110
    "test_workflows.py",  # 105
    "test_scheduler_lost.py",  # 100
    "test_sample.py",  # 90
    "test_exclude.py",  # 85
    "test_notebooks.py",  # 80
]


def pytest_collection_modifyitems(config, items):
    """Mark each test with the tiers of the fixtures it uses (see TIERS_BY_FIXTURE); longest modules first."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        for tier in sorted({TIERS_BY_FIXTURE[name] for name in used if name in TIERS_BY_FIXTURE}):
            item.add_marker(tier)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order
