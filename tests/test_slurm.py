"""Runs as cluster-scheduled jobs on a real single-node SLURM (tests/slurm.py), over TLS.

Each run's store must be identical, every array, to the same run on a LocalCluster.
"""

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from helpers import every_array, photo_crops, write_png
from slurm import jobs, single_node_slurm, why_not

from palette_dask import extract_palette
from palette_dask.cli import main
from palette_dask.run.cluster import connect, jobqueue_options

REPO = Path(__file__).resolve().parents[1]
JOB = ["--cores", "1", "--memory", "2GB", "--walltime", "00:10:00"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node SLURM for this module, through ``SLURM_CONF``; fails, never skips, if it cannot be."""
    reason = why_not()
    if reason:
        pytest.fail(reason, pytrace=False)
    folder = tmp_path_factory.mktemp("slurm")
    try:
        with single_node_slurm(folder) as env, pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", env["SLURM_CONF"])  # for dask-jobqueue's sbatch, squeue, scancel
            patch.setenv("PATH", env["PATH"])
            yield env
    except RuntimeError as exc:
        pytest.fail(f"SLURM could not be started: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i, crop in enumerate(photo_crops(120, seed=3, corners=200, sides=(40, 200))):
        write_png(folder / f"crop{i:03d}.png", crop)
    return folder


@pytest.fixture(scope="module")
def local_store(photos, tmp_path_factory):
    """The same run on a LocalCluster: what every SLURM run must equal."""
    store = tmp_path_factory.mktemp("local") / "local.zarr"
    assert main(["run", str(photos), "-o", str(store), "-k", "6", "--batch-size", "8", "-q"]) == 0
    return every_array(zarr.open_group(store, mode="r"))


def assert_same_store(store, local: dict) -> None:
    arrays = every_array(zarr.open_group(store, mode="r"))
    assert arrays.keys() == local.keys()
    for name in local:
        np.testing.assert_array_equal(arrays[name], local[name], err_msg=name)


def worker_logs_say_tls(folder: Path) -> bool:
    """Whether the worker jobs' logs in ``folder`` show workers listening on tls://, and none on tcp://."""
    lines = [
        line
        for path in folder.iterdir()
        if path.suffix in (".out", ".err")
        for line in path.read_text(errors="replace").splitlines()
        if "Start worker at" in line
    ]
    return bool(lines) and all("tls://" in line for line in lines)


def test_run_with_cluster_slurm_options(slurm, photos, local_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the job logs (slurm-N.out) and the TLS credentials' folder
    before = set(jobs(slurm))
    store = tmp_path / "slurm.zarr"
    argv = ["run", str(photos), "-o", str(store), "-k", "6", "--batch-size", "8", "-q"]
    assert main([*argv, "--cluster", "slurm", "--jobs", "2", *JOB]) == 0
    assert_same_store(store, local_store)
    assert len(set(jobs(slurm, "dask-worker")) - before) >= 2  # worker jobs really ran
    assert worker_logs_say_tls(tmp_path)
    assert not list(tmp_path.glob(".palette-dask-tls-*"))  # the credentials are gone with the cluster


def test_run_with_the_example_cluster_config(slurm, photos, local_store, tmp_path):
    """workflows/slurm/palette-dask.yaml with this machine's values for its sizes, queue and folders."""
    example = yaml.safe_load((REPO / "workflows" / "slurm" / "palette-dask.yaml").read_text())
    cluster = example["palette-dask"]["cluster"]
    logs = tmp_path / "logs"
    cluster.update(
        jobs=2, cores=1, memory="2GB", processes=1, walltime="00:10:00", queue="debug",
        lifetime="9m", **{"local-directory": str(tmp_path), "log-directory": str(logs)},
    )  # fmt: skip
    assert set(cluster) <= set(jobqueue_options(kind="slurm", cores=1, memory="1GB")) | {
        "jobs", "processes", "walltime", "queue", "lifetime", "lifetime-stagger", "local-directory", "kind",
        "log-directory",
    }  # fmt: skip
    config = tmp_path / "palette-dask.yaml"
    config.write_text(yaml.safe_dump(example))
    store = tmp_path / "slurm.zarr"
    argv = ["run", str(photos), "-o", str(store), "-k", "6", "--batch-size", "8", "-q"]
    assert main([*argv, "--cluster-config", str(config)]) == 0
    assert_same_store(store, local_store)
    assert worker_logs_say_tls(logs)


def test_sbatch_collection_script(slurm, photos, local_store, tmp_path):
    config = tmp_path / "workers.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "palette-dask": {
                    "cluster": {
                        "kind": "slurm",
                        "jobs": 1,
                        "cores": 1,
                        "memory": "2GB",
                        "walltime": "00:10:00",
                        "log-directory": str(tmp_path / "logs"),
                    }
                }
            }
        )  # fmt: skip
    )
    out = tmp_path / "out"
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=1", "--mem=2G", "--time=00:10:00",
         f"--output={tmp_path}/driver-%j.log", f"--export=ALL,PALETTE_DASK_CLUSTER_CONFIG={config}",
         "workflows/slurm/collection.sbatch", str(photos), str(out)],
        cwd=REPO, capture_output=True, text=True, env=slurm,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = int(submitted.stdout.strip().split(";")[0])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = jobs(slurm).get(job, "")
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", ""):
            break
        time.sleep(1)
    log = next(tmp_path.glob("driver-*.log")).read_text()
    assert jobs(slurm)[job] == "COMPLETED", log[-2000:]
    assert "images done" in log
    # collection_palette.py passes -k 5 by default and has no --batch-size: compare its palette
    result = extract_palette(str(photos), 5)
    stored = zarr.open_group(out / "palette.zarr", mode="r")
    np.testing.assert_array_equal(stored["centers"][:], result.centers)
    np.testing.assert_array_equal(stored["image_counts"][:], result.image_counts)


def test_a_cancelled_worker_job_is_replaced_and_the_run_finishes(
    slurm, photos, local_store, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    options = jobqueue_options(kind="slurm", jobs=2, cores=1, memory="2GB", walltime="00:10:00")
    store = tmp_path / "slurm.zarr"
    outcome = {}
    with connect(jobqueue=options, dashboard_address="127.0.0.1:0") as client:
        cluster = client.cluster
        client.wait_for_workers(2, timeout=120)

        stored, go = threading.Event(), threading.Event()

        def report(line: str) -> None:
            pass

        def update(stage: str, finished: int, total: int) -> None:
            if stage == "counting" and not stored.is_set():  # a batch is stored, the others are out
                stored.set()
                go.wait(timeout=300)  # the driver waits while the test cancels a job; tasks go on

        report.update = update

        def run():
            try:
                extract_palette(str(photos), 6, store=str(store), client=client, batch_size=8, report=report)
                outcome["done"] = True
            except Exception as exc:  # reported by the test below
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        cancelled = None
        try:
            assert stored.wait(timeout=300), "the run stored no batch"
            while cancelled is None:  # a worker holding the run's tasks or results (the driver waits)
                held = {a: len(t) for a, t in client.processing().items() if t}
                held.update({a: len(k) for a, k in client.has_what().items() if k})
                if held:
                    name = client.scheduler_info()["workers"][next(iter(held))]["name"]
                    cancelled = cluster.workers[name].job_id
                    subprocess.run(["scancel", str(cancelled)], check=True, env=slurm)
                time.sleep(0.05)
        finally:
            go.set()
        thread.join(timeout=300)
        started = set(jobs(slurm, "dask-worker"))
    assert cancelled is not None, "the run ended before a worker job could be cancelled in its middle"
    assert outcome.get("done"), outcome.get("error")
    assert jobs(slurm)[int(cancelled)] == "CANCELLED"
    assert len(started) >= 3  # two, and the one that replaced the cancelled job
    assert_same_store(store, local_store)


def test_workers_retire_at_their_lifetime_and_are_replaced(slurm, photos, local_store, tmp_path, monkeypatch):
    """One worker job at a time, each retiring at its lifetime; the run holds until the first has retired.

    The run waits at its first stored batch until the scheduler has seen a worker retire (an event, not
    a duration): however loaded the machine, the retirement falls inside the run, and its worker
    had 20 s to start and count. A lifetime too short for any task (3 s on a loaded machine) once
    made the run wait for ever: workers that retire are not counted against the tasks they ran, and
    a pass now stops when they keep retiring under them (run.tasks.STALLED_AFTER).
    """
    monkeypatch.chdir(tmp_path)
    before = set(jobs(slurm, "dask-worker"))
    options = jobqueue_options(
        kind="slurm",
        jobs=1,
        cores=1,
        memory="2GB",
        walltime="00:10:00",
        lifetime="20s",
        lifetime_stagger="2s",
    )
    store = tmp_path / "slurm.zarr"
    with connect(jobqueue=options, dashboard_address="127.0.0.1:0") as client:

        def retired() -> bool:
            return any(event.get("action") == "remove-worker" for _, event in client.get_events("all"))

        def report(line: str) -> None:
            pass

        def update(stage: str, finished: int, total: int) -> None:
            while stage == "counting" and not retired():  # a batch is stored: the worker retires meanwhile
                time.sleep(0.1)

        report.update = update
        extract_palette(str(photos), 6, store=str(store), client=client, batch_size=8, report=report)
        assert retired()
    assert_same_store(store, local_store)
    assert len(set(jobs(slurm, "dask-worker")) - before) >= 2  # one retired, another replaced it
