"""A scheduler lost mid-run: a real `dask scheduler` SIGKILLed, then --resume on a new one (issue 33)."""

import asyncio
import contextlib
import logging
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from helpers import dask_scheduler, every_array, photo_crops
from PIL import Image

from palette_dask.cli import EXIT_CLUSTER_LOST
from palette_dask.outputs.store import PENDING
from palette_dask.run.cluster import connect

CLI = str(Path(sys.executable).parent / "palette-dask")
#: 40 photos in batches of 2: the counting pass writes 20 batches, one after another.
BATCHES = ["--batch-size", "2", "-k", "4"]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i, crop in enumerate(photo_crops(40, seed=3, corners=200, sides=(60, 200))):
        Image.fromarray(crop).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def local(photos, tmp_path_factory):
    """The trusted reference: the same files, one run on a local cluster, in one go."""
    store = tmp_path_factory.mktemp("local") / "local.zarr"
    done = subprocess.run(
        [CLI, "run", str(photos), "-o", str(store), "--threads", *BATCHES, "-q"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return every_array(zarr.open_group(store, mode="r"))


@contextlib.contextmanager
def scheduler_and_worker(folder: Path):
    """A `dask scheduler` and a `dask worker` (a nanny and its worker) on 127.0.0.1: address, processes."""
    folder.mkdir()
    with dask_scheduler(folder) as (address, start_worker, processes):
        start_worker("--nthreads", "1")
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=120)
        yield address, processes


def batches_stored(store) -> np.ndarray:
    """Whether each batch of 2 is stored, checking that none is stored by half."""
    status = zarr.open_group(store, mode="r")["image_status"][:]
    batches = np.array_split(status, range(2, len(status), 2))
    assert all((b == PENDING).all() or (b != PENDING).all() for b in batches), status  # no half batch
    return np.array([(b != PENDING).all() for b in batches])


def test_a_scheduler_killed_mid_run_ends_the_command_with_one_line_and_resume_finishes_it(
    tmp_path, photos, local
):
    store = tmp_path / "out.zarr"
    command = [CLI, "run", str(photos), "-o", str(store), *BATCHES]
    with scheduler_and_worker(tmp_path / "first") as (address, (scheduler, worker)):
        process = subprocess.Popen(
            [*command, "--scheduler", address], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for line in process.stderr:
            if "counting:" in line:  # the progress line that follows the first batch stored
                process.send_signal(signal.SIGSTOP)  # frozen: no batch is stored while the scheduler dies
                break
        scheduler.send_signal(signal.SIGKILL)
        assert scheduler.wait(timeout=30) == -signal.SIGKILL  # the fault happened
        before = batches_stored(store)
        assert before.any() and not before.all(), before
        process.send_signal(signal.SIGCONT)
        rest = process.stderr.read()  # ends when the command does: it must not wait for ever
        code = process.wait(timeout=120)
    last = rest.strip().splitlines()[-1]
    after = batches_stored(store)
    assert code == EXIT_CLUSTER_LOST, rest
    assert "unexpected" not in rest and "Traceback" not in rest, rest
    expected = (
        rf"palette-dask: lost the scheduler {re.escape(address)} \(.+\); the store {re.escape(str(store))} "
        rf"keeps {after.sum()} of 20 batches: palette-dask run \.\.\. --resume \(resume=True\) finishes it"
    )
    assert re.fullmatch(expected, last), last
    assert (after >= before).all() and not after.all()  # every batch finished before is kept
    assert zarr.open_group(store, mode="r").attrs["complete"] is False

    with scheduler_and_worker(tmp_path / "second") as (address, _):
        done = subprocess.run(
            [*command, "--resume", "--scheduler", address, "-q"], capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr
    resumed = zarr.open_group(store, mode="r")
    assert resumed.attrs["complete"] is True
    found = every_array(resumed)
    assert set(found) == set(local)
    for name in local:
        np.testing.assert_array_equal(found[name], local[name], err_msg=name)


def test_a_closing_client_logs_no_cancellation_and_other_clients_are_left_as_they_were():
    """connect() drops only a cancelled task's record, only while its client lives."""
    logger, records = logging.getLogger("distributed.client"), []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    def log_both():
        for error in (asyncio.CancelledError(), OSError("reset")):
            try:
                raise error
            except BaseException:
                logger.error("during _reconnect", exc_info=True)

    handler, level, filters = Keep(level=logging.ERROR), logger.level, list(logger.filters)
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)  # the command line, run in this process by other tests, silences it
    try:
        with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
            assert client.submit(sum, [1, 2]).result() == 3
            log_both()  # as distributed does when a lost client closes while reconnecting
        assert [type(r.exc_info[1]) for r in records] == [OSError]  # only the cancellation dropped
        assert logger.filters == filters  # as before it: none, or the session's client's (conftest)
        records.clear()
        log_both()  # no client of connect() open: a user's own clients log as before
        if not filters:
            assert [type(r.exc_info[1]) for r in records] == [asyncio.CancelledError, OSError]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
