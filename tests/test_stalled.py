"""Workers that always retire before a task ends: the pass stops waiting, never waits for ever (issue 33)."""

import json
import subprocess
import time

import pytest
from distributed import Client
from distributed.client import FutureCancelledError
from helpers import DASK

from palette_dask.run.tasks import STALLED, STALLED_AFTER, Pass

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_pass_whose_workers_retire_under_its_task_every_time_stops_waiting(tmp_path):
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler_file = tmp_path / "scheduler.json"
    command = [DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", *loopback]
    processes = [subprocess.Popen(command, **quiet)]
    try:
        while not scheduler_file.exists():  # written once the scheduler listens
            assert processes[0].poll() is None, "the scheduler did not start"
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        # a worker that retires a second after it starts, and is started again by its nanny once the
        # task it ran ends (a retiring worker lets it end, though the scheduler gave it away): 4 s
        lifetime = ["--lifetime", "1s", "--lifetime-stagger", "0s", "--lifetime-restart"]
        processes.append(
            subprocess.Popen([DASK, "worker", address, "--nthreads", "1", *lifetime, *loopback], **quiet)
        )
        with Client(address, timeout=30) as client:
            tasks = Pass()
            tasks.submit("endless", lambda: client.submit(time.sleep, 4, pure=False))  # longer than any life
            [(key, result, error)] = list(tasks)
            retired = [
                event
                for _, event in client.get_events("all")
                if event.get("action") == "remove-worker"
                and event.get("expected")
                and event.get("processing-tasks")
            ]
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    assert len(retired) >= STALLED_AFTER  # the fault happened: workers retired under the task, not counted
    assert key == "endless" and result is None
    assert isinstance(error, FutureCancelledError) and error.reason == STALLED
