"""Workers leave, runs go on: real `dask scheduler` and `dask worker` processes that retire, restart and die.

Each run is compared, every array of its store, with the same run on a LocalCluster.
The inputs mix every kind of task: batches of small files (one broken), a zarr
mosaic read tile by tile with its label raster and pyramid, and a numpy array
scattered to the workers (data no worker can recompute once lost).
"""

import json
import queue
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from distributed import Client
from helpers import DASK, PHOTOS, every_array, photo_crops
from PIL import Image

from palette_dask import connect, extract_palette

pytestmark = pytest.mark.slow  # minutes: runs that wait for workers to retire, restart and die

LOOPBACK = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("leave")
    for i, crop in enumerate(photo_crops(24, seed=5, corners=200, sides=(60, 180))):
        Image.fromarray(crop).save(folder / f"{i:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    tiles = [np.asarray(Image.open(p).convert("RGB"))[:300, :300] for p in PHOTOS]
    rows = [np.concatenate([tiles[(i + j) % 3] for i in range(6)], axis=1) for j in range(6)]
    mosaic = np.concatenate(rows)
    zarr.create_array(folder / "mosaic.zarr", data=mosaic, chunks=(300, 300, 3))  # 1800 x 1800, 36 chunks
    array = np.ascontiguousarray(tiles[1][::-1])
    return [str(p) for p in sorted(folder.glob("*.png"))] + [str(folder / "mosaic.zarr"), array]


OPTIONS = {"k": 5, "batch_size": 4, "chunk_bytes": 2**20, "labels": True}


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    store = tmp_path_factory.mktemp("reference") / "s.zarr"
    with connect(processes=False, n_workers=2, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c:
        extract_palette(inputs, store=store, client=c, report=lambda line: None, **OPTIONS)
    return every_array(zarr.open_group(store, mode="r"))


class Cluster:
    """A `dask scheduler` and `dask worker` processes (each with its nanny), stopped at the end."""

    def __init__(self, folder: Path):
        self.folder, self.processes = folder, []
        scheduler_file = folder / "scheduler.json"
        self._start([DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *LOOPBACK])
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            self.address = client.scheduler.address

    def _start(self, command):
        log = open(self.folder / f"{len(self.processes)}.log", "w")  # noqa: SIM115 (closed at stop)
        self.processes.append((subprocess.Popen(command, stdout=log, stderr=log), log))

    def worker(self, *options):
        self._start([DASK, "worker", self.address, "--nthreads", "1", *options, *LOOPBACK])

    def stop(self):
        for process, _ in self.processes:  # all at once: each shuts down while the others do
            process.terminate()
        for process, log in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture
def cluster(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


def assert_same_store(store, reference):
    found = every_array(zarr.open_group(store, mode="r"))
    assert found.keys() == reference.keys()
    for name in reference:
        np.testing.assert_array_equal(found[name], reference[name], err_msg=name)


@pytest.mark.timeout(900)  # two runs that each wait for workers to leave, twice: minutes on a loaded machine
def test_runs_on_workers_that_retire_at_their_lifetime_and_restart_end_identical(
    tmp_path, inputs, reference, cluster
):
    """Two runs on workers with --lifetime --lifetime-restart; in each pass a worker leaves mid-pass.

    The first progress report of each pass (tasks in flight) waits until the
    scheduler has seen a worker leave since the pass started: the fault
    happens in every pass, on a fast machine or a loaded one.
    """
    for _ in range(2):
        cluster.worker("--lifetime", "8s", "--lifetime-stagger", "2s", "--lifetime-restart")
    with Client(cluster.address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)

        def workers():
            return set(client.scheduler_info()["workers"])

        for run in range(2):
            seen = {}  # stage → the workers when it started

            def report(line: str) -> None:
                pass

            def update(stage: str, finished: int, total: int, seen=seen) -> None:
                if stage in seen:
                    return
                seen[stage] = start = workers()
                deadline = time.monotonic() + 180
                while start <= workers() and time.monotonic() < deadline:  # until one has left
                    time.sleep(0.05)
                assert not start <= workers(), f"no worker left during {stage}"

            report.update = update
            store = tmp_path / f"run{run}.zarr"
            extract_palette(inputs, store=store, client=client, report=report, **OPTIONS)
            assert set(seen) == {"reading and sampling", "counting"}
            assert_same_store(store, reference)


@pytest.mark.timeout(900)  # a run per stage, each waiting for a worker to leave
def test_workers_retired_restarted_and_lost_at_every_stage_do_not_change_the_result(
    tmp_path, inputs, reference, cluster
):
    """At the start of each stage, a worker retires (a replacement joins), or restarts losing what it held."""
    for _ in range(2):
        cluster.worker()
    events, lines = [], queue.Queue()
    with Client(cluster.address, timeout=60) as observer:
        observer.wait_for_workers(2, timeout=120)

        def disturb() -> None:  # one disturbance after another, in a thread of its own: the run goes on
            while (line := lines.get()) is not None:
                workers = sorted(observer.scheduler_info()["workers"])
                try:
                    if len(events) % 2 == 0:
                        observer.retire_workers(workers[:1], close_workers=True)
                        cluster.worker()  # a job queue's replacement
                        events.append(("retired", line, workers[0]))
                    else:
                        observer.restart_workers(workers[-1:], raise_for_error=False)
                        events.append(("restarted", line, workers[-1]))
                except Exception:  # the scheduler was busy with the last one: the next line tries again
                    pass

        def report(line: str) -> None:
            lines.put(line)

        report.update = lambda stage, finished, total: None
        disturber = threading.Thread(target=disturb)
        disturber.start()
        store = tmp_path / "s.zarr"
        try:
            with Client(cluster.address, timeout=60) as client:
                extract_palette(inputs, store=store, client=client, report=report, **OPTIONS)
        finally:
            lines.put(None)
            disturber.join(timeout=300)
    stages = " | ".join(line for _, line, _ in events)
    for stage in ("reading and sampling", "sampling 2 images read tile by tile", "fitting", "counting"):
        assert stage in stages, stages  # a worker left at every stage
    assert {kind for kind, _, _ in events} == {"retired", "restarted"}
    assert_same_store(store, reference)
    assert json.loads((store / "zarr.json").read_text())["attributes"]["complete"] is True
