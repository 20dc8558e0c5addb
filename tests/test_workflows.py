"""The job scripts in workflows/, run as real processes on tiny data."""

import csv
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import PHOTOS, dask_scheduler
from PIL import Image

from palette_dask.cli import EXIT_CLUSTER_LOST
from palette_dask.run.cluster import jobqueue_cluster, jobqueue_options

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def run(script, *argv):
    return subprocess.run(
        [sys.executable, str(WORKFLOWS / script), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_help():
    for script in ("mosaic_palette.py", "collection_palette.py"):
        done = run(script, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout and "--out" in done.stdout


@pytest.mark.slow
def test_mosaic_job(tmp_path):
    rgb = np.asarray(Image.open(PHOTOS[0]))
    bands = np.concatenate([np.moveaxis(rgb, -1, 0)[::-1], np.zeros((1, 512, 512), np.uint8)])  # B, G, R, 0
    bands[:, :, :64] = 0
    tifffile.imwrite(
        tmp_path / "scene.tif", bands, tile=(128, 128), photometric="minisblack", planarconfig="separate"
    )
    done = run(
        "mosaic_palette.py",
        tmp_path / "scene.tif",
        "--out",
        tmp_path / "out",
        "--bands",
        "3,2,1",
        "--nodata",
        "0",
        "--threads",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "palette.json").read_text())
    valid = int((bands != 0).any(axis=0).sum())  # the border, and the photo's pure black pixels
    assert summary["pixels"] == {"valid": valid, "masked": 512 * 512 - valid}
    preview = np.asarray(Image.open(tmp_path / "out" / "preview.png"))
    assert preview.shape == (512, 512, 3) and (preview[:, :64] == 0).all()
    palette = {tuple(int(v) for v in bytes.fromhex(e["hex"][1:])) for e in summary["palette"]}
    assert {tuple(c) for c in preview[:, 64:].reshape(-1, 3)} <= palette | {(0, 0, 0)}  # black: masked
    assert Image.open(tmp_path / "out" / "palette.png").size == (300, 50)


@pytest.mark.slow
def test_collection_job_with_a_failure_then_resume(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in PHOTOS:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    done = run("collection_palette.py", folder, "--out", tmp_path / "out", "-k", "4", "--threads")
    assert done.returncode == 3, done.stderr
    with open(tmp_path / "out" / "shares.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", "status", "valid_pixels", "masked_pixels", "error"] + [
        f"share_{i}" for i in (1, 2, 3, 4)
    ]
    by_name = {Path(r[0]).name: r for r in rows[1:]}
    assert by_name["broken.png"][1] == "failed" and by_name["coffee.png"][1] == "done"
    assert by_name["broken.png"][4].startswith("not a readable image")  # its reason: the row names it
    assert by_name["broken.png"][5:] == [""] * 4  # not counted: blank shares, not 0
    assert abs(sum(float(v) for v in by_name["coffee.png"][5:]) - 1) < 1e-5
    assert "broken.png" in (tmp_path / "out" / "failures.txt").read_text()
    again = run(
        "collection_palette.py", folder, "--out", tmp_path / "out", "-k", "4", "--threads", "--resume"
    )
    # nothing to do: no failure met by this run (issue 33: exit 3 only for failures it met)
    assert again.returncode == 0 and "nothing to do" in again.stderr and "1 failed image(s)" in again.stderr


@pytest.mark.slow
@pytest.mark.cluster
def test_collection_job_that_loses_its_scheduler_exits_4_as_palette_dask_does(tmp_path):
    """A lost scheduler is a ClusterError too: the job exits 4 (the CLI's), not 2 (a usage error)."""
    job = None
    with dask_scheduler(tmp_path) as (address, _, processes):
        scheduler = processes[0]
        try:
            # no worker: the run waits on its first pass until the scheduler dies under it
            command = [sys.executable, str(WORKFLOWS / "collection_palette.py"), *map(str, PHOTOS)]
            job = subprocess.Popen(
                [*command, "--out", str(tmp_path / "out"), "--scheduler", address],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            for line in job.stderr:
                if "dashboard at" in line:  # connected: the run starts
                    break
            scheduler.send_signal(signal.SIGKILL)
            assert scheduler.wait(timeout=30) == -signal.SIGKILL  # the fault happened
            rest = job.stderr.read()  # ends when the job does: it must not wait for ever
            code = job.wait(timeout=120)
        finally:
            if job is not None and job.poll() is None:
                job.kill()
                job.wait()
    assert code == EXIT_CLUSTER_LOST == 4, rest
    assert rest.strip().splitlines()[-1].startswith(f"palette-dask: lost the scheduler {address} ("), rest
    assert "Traceback" not in rest, rest


def test_slurm_example_config_and_script():
    options = jobqueue_options(str(WORKFLOWS / "slurm" / "palette-dask.yaml"))
    with jobqueue_cluster(options, dashboard_address="127.0.0.1:0") as cluster:
        script = cluster.job_script()
    assert "#SBATCH -t 02:00:00" in script and "--lifetime 1h50m --lifetime-stagger 4m" in script
    assert subprocess.run(["bash", "-n", str(WORKFLOWS / "slurm" / "collection.sbatch")]).returncode == 0
