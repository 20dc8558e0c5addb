"""Execution targets with real processes: `dask scheduler` + `dask worker`, the dashboard, timeouts."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zarr
from conftest import PHOTOS

from palette_dask.cli import main

DASK = str(Path(sys.executable).parent / "dask")


@pytest.fixture(scope="module")
def remote_cluster(tmp_path_factory):
    """A scheduler and two worker processes started with distributed's own commands, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    processes = [
        subprocess.Popen(
            [DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *loopback],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", *loopback],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_run_on_a_remote_cluster_equals_the_local_run(capsys, tmp_path, remote_cluster):
    inputs = [str(p) for p in PHOTOS[:2]]
    assert (
        main(["run", *inputs, "-o", str(tmp_path / "remote.zarr"), "--scheduler", remote_cluster, "-q"]) == 0
    )
    assert main(["run", *inputs, "-o", str(tmp_path / "local.zarr"), "--threads", "-q"]) == 0
    capsys.readouterr()
    remote, local = (zarr.open_group(tmp_path / f"{n}.zarr", mode="r") for n in ("remote", "local"))
    for name in ("centers", "colors", "counts", "image_counts", "image_valid", "image_status"):
        np.testing.assert_array_equal(remote[name][:], local[name][:], err_msg=name)


def test_unreachable_scheduler_is_a_usage_error_within_a_bounded_time(capsys, tmp_path):
    start = time.monotonic()
    code = main(["run", str(PHOTOS[1]), "-o", str(tmp_path / "o.zarr"), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - start < 30
    assert err.strip().startswith("palette-dask: cannot reach a dask scheduler at 'tcp://127.0.0.1:9' within")
    assert len(err.strip().splitlines()) == 1


def test_dashboard_answers_during_a_run(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(40):
        (folder / f"{i:02d}.png").write_bytes(PHOTOS[i % 3].read_bytes())
    command = [
        str(Path(sys.executable).parent / "palette-dask"),
        "run",
        str(folder),
        "-o",
        str(tmp_path / "o.zarr"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        link = None
        for line in process.stderr:
            if "dashboard at " in line:
                link = line.split("dashboard at ", 1)[1].strip()
                break
        assert link and link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(link, timeout=20) as response:
            assert response.status == 200
            assert b"Dask" in response.read()
        assert process.poll() is None, "the run ended before the dashboard was checked"
    finally:
        process.stderr.read()
        process.wait(timeout=120)
    assert process.returncode == 0
