"""Reliability with real failures: a killed client, dying workers, and stopping at the first bad image."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from helpers import PHOTOS, every_array, photo_crops, write_png
from PIL import Image

from palette_dask import connect, extract_palette
from palette_dask.cli import main
from palette_dask.outputs.store import DONE, FAILED, PENDING
from palette_dask.run.pipeline import ImageFailedError, RunIncompleteError

CLI = str(Path(sys.executable).parent / "palette-dask")


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """60 different crops of the photos, and one broken file."""
    folder = tmp_path_factory.mktemp("collection")
    for i, crop in enumerate(photo_crops(60, seed=0, corners=200, sides=(60, 200))):
        Image.fromarray(crop).save(folder / f"{i:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


#: Small batches, label rasters: the counting pass writes many batches, one after another.
OPTIONS = ["--threads", "--batch-size", "2", "--labels"]


@pytest.fixture(scope="module")
def uninterrupted(collection, tmp_path_factory):
    store = tmp_path_factory.mktemp("full") / "full.zarr"
    done = subprocess.run(
        [CLI, "run", str(collection), "-o", str(store), *OPTIONS, "-q"], capture_output=True
    )
    assert done.returncode == 3  # the broken file
    return zarr.open_group(store, mode="r")


@pytest.mark.slow
def test_a_run_killed_with_some_batches_stored_resumes_to_identical_arrays(
    tmp_path, collection, uninterrupted
):
    store = tmp_path / "cut.zarr"
    command = [CLI, "run", str(collection), "-o", str(store), *OPTIONS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "counting:" in line:  # the progress line that follows the first batch written
            process.send_signal(signal.SIGSTOP)  # frozen, threads and all: the store cannot change now
            break
    status = zarr.open_group(store, mode="r")["image_status"][:]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    batches = np.array_split(status, range(2, len(status), 2))
    stored = np.array([(batch != PENDING).all() for batch in batches])
    assert stored.any() and not stored.all(), status  # killed with some batches stored, others not
    assert all((batch == PENDING).all() or (batch != PENDING).all() for batch in batches)  # no half batch
    assert zarr.open_group(store, mode="r").attrs["complete"] is False
    shown = subprocess.run([CLI, "show", str(store), "--json"], capture_output=True, text=True)
    assert '"complete": false' in shown.stdout and "the store is incomplete" not in shown.stdout
    shown = subprocess.run([CLI, "show", str(store)], capture_output=True, text=True)
    assert "the store is incomplete: finish it with 'palette-dask run ... --resume'" in shown.stderr
    (store / "image_status" / "c" / "0.0a1b.partial").write_bytes(b"torn")  # what a killed write leaves
    done = subprocess.run([*command, "--resume", "-q"], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert not list(store.rglob("*.partial"))
    resumed = zarr.open_group(store, mode="r")
    assert resumed.attrs["complete"] is True
    expected, found = every_array(uninterrupted), every_array(resumed)
    assert set(found) == set(expected) and len(expected) > 60  # the label rasters too
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)
    for name in ("inertia", "lab_error", "sample_inertia", "display_range"):
        assert resumed.attrs.get(name) == uninterrupted.attrs.get(name), name
    again = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    # nothing to do: no failure met by this command (issue 33: exit 3 only for failures it met)
    assert again.returncode == 0 and "nothing to do" in again.stderr and "failed image" in again.stderr


def test_on_error_fail_stops_at_the_first_bad_image(capsys, tmp_path, collection):
    code = main(
        ["run", str(collection), "-o", str(tmp_path / "s.zarr"), "--threads", "-q", "--on-error", "fail"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("palette-dask: stopped at the first failure (--on-error fail, on_error='fail'): ")
    assert "broken.png: not a readable image" in err
    if (tmp_path / "s.zarr").exists():  # batches finished before the failure stay, for --resume
        group = zarr.open_group(tmp_path / "s.zarr", mode="r")
        assert group.attrs["complete"] is False
        status = group["image_status"][:].tolist()
        assert status.count(FAILED) == 1 and status.count(DONE) >= 1
    else:  # no image was stored before it: no store is left to block the retry
        assert list(tmp_path.iterdir()) == []


def crash_the_worker(block):
    if block.size:  # not when dask probes the function with an empty block
        os._exit(1)  # a worker dying under this task, as an out-of-memory kill would
    return block


@pytest.mark.cluster
@pytest.mark.slow
def test_a_task_that_kills_its_workers_leaves_its_image_pending(tmp_path):
    deadly = da.zeros((64, 64, 3), dtype=np.uint8, chunks=(32, 32, 3)).map_blocks(
        crash_the_worker, dtype=np.uint8
    )
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with connect(
            processes=True, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0"
        ) as client:
            with pytest.raises(RunIncompleteError, match="image\\(s\\) not finished because workers died"):
                extract_palette([PHOTOS[1], deadly], 3, store=tmp_path / "s.zarr", client=client)
    if not (tmp_path / "s.zarr").exists():  # the photo's tasks died too: nothing stored, no store left
        return
    group = zarr.open_group(tmp_path / "s.zarr", mode="r")
    status = group["image_status"][:].tolist()
    assert status == [DONE, PENDING]  # the deadly one never marked done, nor failed: --resume tries it again
    assert group["image_valid"][0] == 400 * 600
    assert group.attrs["complete"] is False


def test_on_error_fail_from_the_api(client, tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ImageFailedError, match="zero.png: empty file"):
        extract_palette([PHOTOS[1], tmp_path / "zero.png"], 3, client=client, on_error="fail")


@pytest.mark.slow
def test_a_worker_killed_mid_run_does_not_change_the_result(
    tmp_path, collection, uninterrupted, remote_cluster
):
    from distributed import Client

    store = tmp_path / "s.zarr"
    command = [
        CLI,
        "run",
        str(collection),
        "-o",
        str(store),
        "--scheduler",
        remote_cluster,
        *OPTIONS[1:],
        "-q",
    ]
    with Client(remote_cluster, timeout=30) as observer:
        pid_of = observer.run(os.getpid)  # {worker address: pid}
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        held, deadline = {}, time.monotonic() + 120
        while not held and process.poll() is None and time.monotonic() < deadline:
            processing, has_what = observer.processing(), observer.has_what()
            held = {a: len(processing.get(a, ())) + len(has_what.get(a, ())) for a in pid_of}
            held = {a: n for a, n in held.items() if n}
        assert held and process.poll() is None, "the run ended before a worker held any of its tasks"
        victim = next(iter(held))
        os.kill(pid_of[victim], signal.SIGKILL)  # it held tasks or results: they must run again
        rest = process.stderr.read()
        assert process.wait(timeout=300) == 3, rest
        observer.wait_for_workers(2, timeout=60)
        assert pid_of[victim] not in observer.run(os.getpid).values()  # the nanny started a new one
    expected, found = every_array(uninterrupted), every_array(zarr.open_group(store, mode="r"))
    assert set(found) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)


@pytest.fixture(scope="module")
def crops_and_full_run(tmp_path_factory):
    """160 photo crops, the command that runs them in batches of 4, and the store of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("crops")
    for i, crop in enumerate(photo_crops(160, seed=4, corners=200, sides=(60, 160))):
        write_png(folder / f"c{i:03d}.png", crop)
    command = [
        sys.executable,
        "-m",
        "palette_dask.cli",
        "run",
        str(folder),
        "-k",
        "4",
        "--batch-size",
        "4",
        "-q",
    ]
    full = folder.parent / "full.zarr"
    assert subprocess.run([*command, "-o", str(full)], capture_output=True).returncode == 0
    return command, every_array(zarr.open_group(full, mode="r"))


@pytest.mark.parametrize("moment", ["reading and sampling", "counting:"])
@pytest.mark.slow
def test_ctrl_c_always_stops_with_exit_130_and_a_resumable_store(tmp_path, crops_and_full_run, moment):
    """SIGINT to the command at a progress line; then --resume gives the uninterrupted store.

    At "reading and sampling" the store is made and holds no image (it is removed and the
    command says so); at the first "counting:" line a batch is stored (the store is kept).
    """
    command, full = crops_and_full_run
    store = tmp_path / "cut.zarr"
    loud = [part for part in command if part != "-q"]
    process = subprocess.Popen([*loud, "-o", str(store)], stderr=subprocess.PIPE, text=True)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if moment in line:
            process.send_signal(signal.SIGSTOP)  # frozen at that moment
            break
    assert process.poll() is None, "".join(seen)
    status = zarr.open_group(store, mode="r")["image_status"][:]
    assert (status == PENDING).all() if moment == "reading and sampling" else 0 < (status != PENDING).sum()
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    if moment == "reading and sampling":
        assert last == (
            f"palette-dask: interrupted before any image was stored: nothing is kept ({store}); "
            "run the command again"
        )
        assert not store.exists() and "is not kept" not in err  # one message, a true one
    else:
        assert last == f"palette-dask: interrupted; {store} keeps what was done: finish it with --resume"
    resumed = subprocess.run([*command, "-o", str(store), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    cut = every_array(zarr.open_group(store, mode="r"))
    assert full.keys() == cut.keys()
    for name in full:
        np.testing.assert_array_equal(cut[name], full[name], err_msg=name)


@pytest.fixture(scope="module")
def tiled_mosaic(tmp_path_factory):
    """A 6000 x 6000 zarr mosaic of photo tiles in 500 x 500 chunks: read and counted chunk by chunk."""
    path = tmp_path_factory.mktemp("mosaic") / "mosaic.zarr"
    tiles = [np.asarray(Image.open(p).convert("RGB"))[:400, :400] for p in PHOTOS]
    row = np.concatenate([tiles[i % 3] for i in range(15)], axis=1)
    mosaic = np.concatenate([np.roll(row, 400 * j, axis=1) for j in range(15)], axis=0)
    zarr.create_array(path, data=mosaic, chunks=(500, 500, 3))
    return path


@pytest.mark.parametrize("workers", ["--threads", "--processes"])
@pytest.mark.slow
def test_ctrl_c_while_tasks_write_labels_of_a_store_to_be_removed_leaves_nothing(
    tmp_path, tiled_mosaic, workers
):
    """Interrupted while label rasters are written and no image is stored: no store, then a re-run works."""
    store = tmp_path / "m.zarr"
    command = [CLI, "run", str(tiled_mosaic), "-o", str(store), "--labels", "-k", "4", workers]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "counting the pixels" in line:
            break
    chunks = store / "labels" / "0" / "0" / "c"
    while process.poll() is None and not (chunks.exists() and any(chunks.iterdir())):
        time.sleep(0.001)  # until the first label chunk is written (an event in the store)
    process.send_signal(signal.SIGSTOP)
    assert process.poll() is None, "the run ended before a label chunk was seen"
    assert (zarr.open_group(store, mode="r")["image_status"][:] == PENDING).all()  # nothing stored yet
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGCONT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("palette-dask: interrupted before any image was stored")
    assert not store.exists(), sorted(str(p.relative_to(store)) for p in store.rglob("*"))[:5]
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert zarr.open_group(store, mode="r")["image_status"][:].tolist() == [DONE]
