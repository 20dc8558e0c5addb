"""Execution targets with real processes: `dask scheduler` + `dask worker`, the dashboard, timeouts."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import dask.config
import numpy as np
import pytest
import zarr
from dask.utils import parse_timedelta
from helpers import PHOTOS

from palette_dask import connect
from palette_dask.cli import main
from palette_dask.run.cluster import PROFILE_INTERVAL, THREADS_UP_TO_CORES

CLI = str(Path(sys.executable).parent / "palette-dask")


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


@pytest.mark.slow
def test_unreachable_scheduler_is_a_usage_error_within_a_bounded_time(capsys, tmp_path):
    code = main(["run", str(PHOTOS[1]), "-o", str(tmp_path / "o.zarr"), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2  # it gave up after its own connect timeout, which the message names (no hang)
    assert err.strip().startswith("palette-dask: cannot reach a dask scheduler at 'tcp://127.0.0.1:9' within")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
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


def test_job_script_from_options_has_resources_and_lifetime(capsys):
    argv = ["run", "x.png", "--cluster", "slurm", "--cores", "4", "--memory", "8GB", "--walltime", "01:00:00"]
    assert main([*argv, "--queue", "short", "--account", "proj", "--print-job-script"]) == 0
    script = capsys.readouterr().out
    for line in (
        "#SBATCH -p short",
        "#SBATCH -A proj",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8G",
        "#SBATCH -t 01:00:00",
    ):
        assert line in script
    assert "--nthreads 4" in script and "--lifetime 55m --lifetime-stagger 2m" in script


def test_job_script_from_a_yaml_file_in_the_palette_dask_namespace(capsys, tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(
        "palette-dask:\n  cluster:\n    kind: pbs\n    cores: 2\n    memory: 4GB\n"
        '    walltime: "00:30:00"\n    jobs: 3\n    lifetime-stagger: 1m\n'
    )
    assert main(["run", "x.png", "--cluster-config", str(config), "--print-job-script"]) == 0
    script = capsys.readouterr().out
    assert "#PBS -l walltime=00:30:00" in script and "ncpus=2" in script
    assert "--lifetime 25m --lifetime-stagger 1m" in script
    assert (
        main(
            ["run", "x.png", "--cluster-config", str(config), "--walltime", "02:00:00", "--print-job-script"]
        )
        == 0
    )
    assert "--lifetime 115m" in capsys.readouterr().out  # options override the file


@pytest.mark.parametrize(
    "yaml_text, argv, message",
    [
        (
            "palette-dask:\n  cluster:\n    kind: slurm\n    colour: red\n",
            [],
            "unknown key(s) colour; accepted: kind, jobs",
        ),
        ("palette-dask:\n  clusters: {}\n", [], "unknown key(s) palette-dask.clusters"),
        ("palette-dask: [", [], "cannot read the cluster configuration"),
        (
            "",
            ["--cluster", "kubernetes", "--cores", "1", "--memory", "1GB"],
            "unknown cluster kind 'kubernetes'; accepted: slurm, pbs",
        ),
        ("", ["--cluster", "slurm", "--memory", "1GB"], "a slurm cluster needs cores per job"),
    ],
)
def test_bad_cluster_settings_are_usage_errors(capsys, tmp_path, yaml_text, argv, message):
    extra = []
    if yaml_text:
        (tmp_path / "c.yaml").write_text(yaml_text)
        extra = ["--cluster-config", str(tmp_path / "c.yaml")]
    assert main(["run", "x.png", "-o", str(tmp_path / "o.zarr"), *extra, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1  # refused before any cluster started
    assert not (tmp_path / "o.zarr").exists()


def test_default_local_cluster_is_sized_to_the_machine():
    cores = os.cpu_count()
    with connect(dashboard_address="127.0.0.1:0") as client:
        workers = list(client.scheduler_info()["workers"].values())
        if cores <= THREADS_UP_TO_CORES:  # one in-process worker, a thread per core
            assert client.cluster.processes is False
            assert [w["nthreads"] for w in workers] == [cores]
        else:  # a worker process per core
            assert client.cluster.processes is True
            assert [w["nthreads"] for w in workers] == [1] * cores


@pytest.mark.slow
def test_local_workers_sample_their_stacks_every_100_ms_unless_configured():
    """dask's profiler runs every PROFILE_INTERVAL on connect()'s workers; a configured interval is kept."""
    key = "distributed.worker.profile.interval"

    def intervals(client):
        return list(
            client.run(lambda dask_worker: dask_worker.periodic_callbacks["profile"].callback_time).values()
        )

    before = dask.config.get(key)
    with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
        assert intervals(client) == [parse_timedelta(PROFILE_INTERVAL) * 1000] == [100]
    assert dask.config.get(key) == before  # the configuration as it was
    with dask.config.set({key: "50ms"}), connect(processes=False, dashboard_address="127.0.0.1:0") as client:
        assert intervals(client) == [50]


@pytest.mark.cluster
def test_the_command_on_process_workers_through_a_pipe(tmp_path):
    command = [CLI, "run", str(PHOTOS[1]), "-o", str(tmp_path / "p.zarr"), "--processes", "--workers", "2"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # the whole document arrives through the pipe
    assert document["pixels"]["valid"] == 400 * 600 and document["k"] == 5
    refused = subprocess.run([*command, "--threads"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "not allowed with argument" in refused.stderr
