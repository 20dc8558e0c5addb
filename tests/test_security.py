"""Nobody else gets in: the clusters palette_dask starts speak TLS, and a TLS scheduler of one's own works."""

import asyncio
import json
import os
import stat
import subprocess
import sys
import time

import pytest
import zarr
from distributed.security import Security
from helpers import DASK, PHOTOS, every_array

from palette_dask.cli import EXIT_USAGE, main
from palette_dask.run.cluster import connect, jobqueue_cluster, jobqueue_options


def ask_identity(address: str, security) -> dict:
    """Connect to a scheduler as a client does (a comm with ``security``'s TLS) and ask who it is."""
    from distributed.comm import connect as open_comm

    async def ask():
        args = (security or Security()).get_connection_args("client")
        comm = await open_comm(address, timeout=5, **args)
        try:
            await comm.write({"op": "identity"})
            return await asyncio.wait_for(comm.read(), 5)
        finally:
            await comm.close()

    return asyncio.run(ask())


def refused(address: str, security) -> str:
    """The error a connection to ``address`` with ``security`` meets; fails the test if it gets an answer.

    Plain comms, not a Client: a Client that fails to connect may hang closing its own thread.
    """
    try:
        reply = ask_identity(address, security)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    pytest.fail(f"a client with {security!r} got an answer from {address}: {reply}")


@pytest.mark.cluster
def test_a_process_cluster_refuses_clients_without_its_credentials():
    with connect(processes=True, n_workers=1, dashboard_address="127.0.0.1:0") as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert ask_identity(address, client.security)["type"] == "Scheduler"  # its own credentials get in
        assert "TLS" in refused(address, None)  # no credentials
        assert "certificate does not match" in refused(address, Security.temporary())  # another cluster's
        assert "Comm" in refused(address.replace("tls://", "tcp://"), None)  # plain TCP: the comm is closed


def test_a_jobqueue_cluster_uses_tls_with_credentials_only_the_user_reads(tmp_path):
    options = jobqueue_options(kind="slurm", cores=1, memory="1GB", **{"shared_directory": str(tmp_path)})
    with jobqueue_cluster(options, dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        script = cluster.job_script()
        (folder,) = tmp_path.iterdir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        files = sorted(folder.iterdir())
        assert [f.name for f in files] == ["ca.pem", "cert.pem", "key.pem"]
        for file in files:
            assert f"{file}" in script
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert "--tls-ca-file" in script and "--tls-key" in script
        assert refused(cluster.scheduler_address, None)
    assert list(tmp_path.iterdir()) == []  # removed with the cluster


@pytest.fixture
def tls_files(tmp_path):
    """A CA certificate, and a certificate and key it signed (one self-signed pair), as PEM files."""
    security = Security.temporary()
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "cert.pem",
        "key": tmp_path / "key.pem",
    }
    files["ca"].write_text(security.tls_ca_file)
    files["cert"].write_text(security.tls_scheduler_cert)
    files["key"].write_text(security.tls_scheduler_key)
    files["key"].chmod(0o600)
    return files


@pytest.mark.cluster
def test_a_tls_scheduler_started_with_dask_commands_is_used_with_dask_config(tls_files, tmp_path, capsys):
    tls = ["--tls-ca-file", str(tls_files["ca"]), "--tls-cert", str(tls_files["cert"])]
    tls += ["--tls-key", str(tls_files["key"])]
    loopback = ["--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0"]
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        subprocess.Popen(
            [DASK, "scheduler", "--protocol", "tls", "--port", "0", "--scheduler-file", str(scheduler_file)]
            + loopback
            + tls,
            **quiet,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tls://")
        started.append(
            subprocess.Popen([DASK, "worker", address, "--nthreads", "1", *loopback, *tls], **quiet)
        )
        inputs = [str(p) for p in PHOTOS[:2]]

        assert (
            main(["run", *inputs, "-o", str(tmp_path / "none.zarr"), "--scheduler", address, "-q"])
            == EXIT_USAGE
        )
        assert "a tls:// scheduler needs certificates from dask's configuration" in capsys.readouterr().err

        env = dict(
            os.environ,
            DASK_DISTRIBUTED__COMM__TLS__CA_FILE=str(tls_files["ca"]),
            DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT=str(tls_files["cert"]),
            DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY=str(tls_files["key"]),
        )
        command = [sys.executable, "-m", "palette_dask.cli", "run", *inputs, "-k", "4", "-q"]
        done = subprocess.run(
            [*command, "-o", str(tmp_path / "tls.zarr"), "--scheduler", address], env=env, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            process.wait(timeout=20)
    assert main(["run", *inputs, "-k", "4", "-q", "-o", str(tmp_path / "local.zarr")]) == 0
    remote, local = (every_array(zarr.open_group(tmp_path / n, mode="r")) for n in ("tls.zarr", "local.zarr"))
    assert remote.keys() == local.keys()
    for name in local:
        assert (remote[name] == local[name]).all(), name
