"""Cluster: the dask.distributed client a run computes on.

By default a :class:`~distributed.LocalCluster` is started in-process, with
its dashboard bound to 127.0.0.1; ``scheduler`` attaches to a running cluster
by address instead, or an existing :class:`~distributed.Client` is used as is;
``jobqueue`` starts a job-queue cluster (SLURM, PBS, SGE, LSF, Moab, OAR,
HTCondor) through dask-jobqueue, whose workers retire before the walltime
ends and are replaced by new jobs, so a long run outlives its jobs.

A job-queue cluster is described by a dict with the keys of
:data:`JOBQUEUE_KEYS`, read from the dask config namespace ``palette-dask``
(``palette-dask: {cluster: {kind: slurm, cores: 8, ...}}`` in a YAML file)
and overridden by explicit options.

Nobody else gets in: a dask scheduler runs code for anyone who can reach its
port, so the clusters started here whose workers are other processes (a
LocalCluster of processes, a job-queue cluster) speak TLS with credentials
made for the run (:meth:`distributed.security.Security.temporary`): a client
or worker without them is refused. A job-queue cluster's workers read theirs
from files only the user can read, in a folder their jobs see
(``shared-directory``). A scheduler given by address uses dask's own TLS
configuration (``distributed.comm.tls.*``) for a ``tls://`` address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterator

import dask.config
from dask.utils import parse_timedelta
from distributed import Client, LocalCluster, WorkerPlugin
from distributed.client import ClosedClientError, FutureCancelledError
from distributed.comm import CommClosedError
from distributed.security import Security

from ..errors import ClusterError, ClusterLostError, one_line
from ..inputs import retry
from .tasks import CONNECTION_LOST

__all__ = [
    "connect", "scheduler_kept", "share_retry_policy", "dashboard_link", "jobqueue_options",
    "jobqueue_cluster", "JOBQUEUE_KINDS",
]  # fmt: skip

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 10
#: On a machine with at most this many cores the default LocalCluster is one
#: in-process worker with a thread per core; above it, one worker process per
#: core. Measured on 2 cores (benchmarks/RESULTS.md), threads beat process
#: workers on every input: 16 MP PNG 3.3 s vs 6.5 s, 4 GB zarr mosaic 20 s vs
#: 35 s, 2,000 photos 52 s vs 65 s. The hot loops (decoders, zarr codecs, the
#: numba kernels) release the GIL, and no pixels cross process boundaries;
#: processes cost a second or two of start-up and imports in every worker.
#: Many cores need processes to spread Python's per-task work past the GIL.
THREADS_UP_TO_CORES = 4
#: The workers of a LocalCluster started here sample their running tasks' stacks (dask's profiler:
#: the dashboard's Profile page) every 100 ms rather than dask's 10: each sample walks the task
#: threads' stacks on the event loop, holding the GIL, and at 10 ms took 18-31 ms of CPU a second
#: while two tasks ran (benchmarks/RESULTS.md, "Where a run's CPU goes, per photo"). An interval set
#: in dask's configuration other than dask's default is kept.
PROFILE_INTERVAL = "100ms"
#: Job-queue systems, by the name used with ``--cluster``.
JOBQUEUE_KINDS = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
    "htcondor": "HTCondorCluster",
}
#: What a job-queue cluster description may say.
JOBQUEUE_KEYS = {
    "kind": "slurm, pbs, sge, lsf, moab, oar or htcondor",
    "jobs": "jobs kept running (default 1)",
    "cores": "cores per job",
    "memory": "memory per job, e.g. 16GB",
    "processes": "worker processes per job (default 1)",
    "walltime": "HH:MM:SS per job",
    "queue": "queue or partition",
    "account": "account or project to charge",
    "lifetime": "a worker retires after this long, e.g. 55m (default: walltime minus 5 minutes)",
    "lifetime-stagger": "spread of the lifetimes, e.g. 4m (default 2m)",
    "interface": "network interface the workers reach the scheduler on, e.g. ib0",
    "job-extra-directives": "extra lines for the job script header",
    "local-directory": "scratch folder on the compute nodes",
    "log-directory": "where job logs go",
    "shared-directory": "a folder the worker jobs see, for the run's TLS credentials (default: this one)",
}


def jobqueue_options(config_file: str | None = None, **overrides) -> dict:
    """A job-queue cluster description: dask config ``palette-dask.cluster``, ``config_file``, overrides.

    Raises
    ------
    ClusterError
        For a YAML file that cannot be read, unknown keys, or an unknown kind.

    Examples
    --------
    >>> jobqueue_options(kind="slurm", cores=4, memory="8GB")["kind"]
    'slurm'
    """
    import dask.config

    options = dict(dask.config.get("palette-dask.cluster", default={}) or {})
    if config_file:
        import yaml

        try:
            with open(config_file) as handle:
                document = yaml.safe_load(handle) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterError(f"{config_file}: cannot read the cluster configuration: {exc}") from None
        if not isinstance(document, dict) or set(document) - {"palette-dask"}:
            raise ClusterError(f"{config_file}: expected a YAML mapping with one key, 'palette-dask'")
        section = (document.get("palette-dask") or {}).get("cluster") or {}
        unknown = set(document.get("palette-dask") or {}) - {"cluster"}
        if unknown:
            raise ClusterError(
                f"{config_file}: unknown key(s) palette-dask.{', '.join(sorted(unknown))}; accepted: cluster"
            )
        options.update(section)
    options.update({k.replace("_", "-"): v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(options) - set(JOBQUEUE_KEYS))
    if unknown:
        raise ClusterError(
            f"{config_file or 'cluster options'}: unknown key(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(JOBQUEUE_KEYS)}"
        )
    if options.get("kind") not in JOBQUEUE_KINDS:
        raise ClusterError(
            f"unknown cluster kind {options.get('kind')!r}; accepted: {', '.join(JOBQUEUE_KINDS)}"
        )
    for required in ("cores", "memory"):
        if options.get(required) in (None, ""):
            raise ClusterError(
                f"a {options['kind']} cluster needs {required} per job ({JOBQUEUE_KEYS[required]})"
            )
    return options


def _minutes(walltime: str) -> float:
    parts = [float(p) for p in str(walltime).split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    hours, minutes, seconds = parts[-3:]
    return hours * 60 + minutes + seconds / 60


@contextlib.contextmanager
def jobqueue_cluster(options: dict, *, dashboard_address: str = "127.0.0.1:8787"):
    """A dask-jobqueue cluster from :func:`jobqueue_options` while the block lasts (no job submitted yet).

    Workers get ``--lifetime`` (default: walltime minus 5 minutes) and
    ``--lifetime-stagger``, so they retire before the scheduler kills them.
    Scheduler and workers speak TLS with credentials made for this cluster,
    written for the jobs in a folder only the user can enter, in
    ``shared-directory`` (the current folder by default), and removed with
    the cluster.
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise ClusterError(
            "job-queue clusters need dask-jobqueue: pip install 'palette-dask[jobqueue]'"
        ) from None
    cluster_class = getattr(dask_jobqueue, JOBQUEUE_KINDS[options["kind"]])
    lifetime = options.get("lifetime")
    if lifetime is None and options.get("walltime"):
        lifetime = f"{max(1, int(_minutes(options['walltime']) - 5))}m"
    extra = (
        ["--lifetime", str(lifetime), "--lifetime-stagger", str(options.get("lifetime-stagger", "2m"))]
        if lifetime
        else []
    )
    keywords = {
        "cores": int(options["cores"]),
        "memory": str(options["memory"]),
        "processes": int(options.get("processes", 1)),
        "worker_extra_args": extra,
        "scheduler_options": {"dashboard_address": dashboard_address},
        "protocol": "tls://",
    }
    for key in (
        "walltime",
        "queue",
        "account",
        "interface",
        "job-extra-directives",
        "local-directory",
        "log-directory",
    ):
        if options.get(key) is not None:
            keywords[key.replace("-", "_")] = options[key]
    shared = os.path.abspath(os.path.expanduser(os.path.expandvars(options.get("shared-directory") or ".")))
    try:
        folder = tempfile.mkdtemp(prefix=".palette-dask-tls-", dir=shared)  # mode 0700
    except OSError as exc:
        raise ClusterError(f"{shared}: cannot hold the workers' TLS credentials: {exc}") from None
    try:
        try:
            cluster = cluster_class(**keywords, security=_credential_files(folder))
        except (TypeError, ValueError) as exc:
            raise ClusterError(f"{options['kind']} cluster: {exc}") from None
        with cluster:
            yield cluster
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _credential_files(folder: str) -> Security:
    """Temporary TLS credentials (a self-signed certificate and its key), as files in ``folder``."""
    made = Security.temporary()
    ca, cert, key = (os.path.join(folder, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    for path, text in ((ca, made.tls_ca_file), (cert, made.tls_worker_cert), (key, made.tls_worker_key)):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(text)
    roles = {
        f"tls_{role}_{part}": path
        for role in ("client", "scheduler", "worker")
        for part, path in (("cert", cert), ("key", key))
    }
    return Security(tls_ca_file=ca, require_encryption=True, **roles)


class _NoCancelledTraceback(logging.Filter):
    """Drops what distributed logs when a client closes during its reconnection: a cancelled task.

    A client that lost its scheduler tries to reconnect for its timeout; closed
    meanwhile (the run ends on :class:`~palette_dask.errors.ClusterLostError`), it
    cancels that task, and distributed logs the cancellation as an error with a
    traceback, after the run's one line. A cancellation is no error: dropped, only it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


_CANCELLED = _NoCancelledTraceback()
_filtering = {"clients": 0}
_filtering_lock = threading.Lock()


@contextlib.contextmanager
def _cancellation_not_logged() -> Iterator[None]:
    """While a client :func:`connect` made is open and closing, distributed's client logs no cancellation.

    The filter is on the logger only while such a client lives (counted, for clients open at once
    in threads), so a host process's own clients are left as they were before and after.
    """
    logger = logging.getLogger("distributed.client")
    with _filtering_lock:
        _filtering["clients"] += 1
        logger.addFilter(_CANCELLED)
    try:
        yield
    finally:
        with _filtering_lock:
            _filtering["clients"] -= 1
            if not _filtering["clients"]:
                logger.removeFilter(_CANCELLED)


@contextlib.contextmanager
def connect(
    scheduler: str | Client | None = None,
    *,
    jobqueue: dict | None = None,
    processes: bool | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Client]:
    """A client for one run: the one given, one at ``scheduler``, a job-queue cluster, or a LocalCluster.

    What this context starts, it closes on exit; a client that was passed in stays open.
    A LocalCluster has process workers when ``processes`` is true, one
    in-process worker with threads when it is false, and when it is None the
    machine decides: threads up to :data:`THREADS_UP_TO_CORES` cores, else
    processes (``n_workers`` given: processes).
    The LocalCluster's dashboard and its workers' HTTP servers listen on 127.0.0.1
    only (``dashboard_address`` chooses the port; distributed would take None
    for "every interface"); with process workers it speaks TLS, with
    credentials made for it (threads talk in-process: no port to reach).

    Raises
    ------
    ClusterError
        When the scheduler cannot be reached within ``timeout`` seconds.

    Examples
    --------
    >>> with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    if isinstance(scheduler, Client):
        yield scheduler
        return
    if jobqueue is not None:
        with (
            _cancellation_not_logged(),
            jobqueue_cluster(jobqueue, dashboard_address=dashboard_address) as cluster,
            Client(cluster) as client,
        ):
            jobs = int(jobqueue.get("jobs", 1))
            cluster.adapt(minimum_jobs=jobs, maximum_jobs=jobs)  # retired workers' jobs are replaced
            yield client
        return
    if scheduler:
        if str(scheduler).startswith("tls://") and not Security().get_connection_args("client").get(
            "ssl_context"
        ):
            raise ClusterError(
                f"{scheduler}: a tls:// scheduler needs certificates from dask's configuration: "
                "distributed.comm.tls.ca-file, .client.cert and .client.key (for example the variables "
                "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ..._CLIENT__CERT and ..._CLIENT__KEY)"
            )
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach a dask scheduler at {scheduler!r} within {timeout:g} s ({exc}); "
                "pass an address such as tcp://127.0.0.1:8786"
            ) from None
        with _cancellation_not_logged(), client:
            yield client
        return
    if processes is None:
        processes = n_workers is not None or (os.cpu_count() or 1) > THREADS_UP_TO_CORES
    if processes and threads_per_worker is None and n_workers is None:
        threads_per_worker = 1  # one worker process per core
    with warnings.catch_warnings(), dask.config.set(_profile_interval()):
        warnings.filterwarnings("ignore", message="Port .* is already in use")  # another port is taken
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            host="127.0.0.1" if processes else None,  # threads talk in-process, no socket
            security=Security.temporary() if processes else None,
            protocol="tls://" if processes else None,
            dashboard_address=dashboard_address,
            worker_dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        )
    with _cancellation_not_logged(), cluster, Client(cluster) as client:
        yield client


def _profile_interval() -> dict:
    """The profiler's interval for the workers started here: :data:`PROFILE_INTERVAL`, unless configured.

    Workers read it when they start (a worker process from its nanny's
    configuration, taken when the cluster starts).
    """
    key = "distributed.worker.profile.interval"
    return {key: PROFILE_INTERVAL} if parse_timedelta(dask.config.get(key), default="ms") == 0.01 else {}


@contextlib.contextmanager
def scheduler_kept(client: Client) -> Iterator[None]:
    """Turn what a client that lost its scheduler raises, wherever the block talks to it, into one error.

    When the connection closes (the scheduler killed, its node preempted, the
    network gone), distributed cancels every future at once, tries to
    reconnect for the client's ``timeout`` (:data:`CONNECT_TIMEOUT` for a
    scheduler given by address) and then closes the client: a result waited
    for raises ``FutureCancelledError``, a submission ``ClosedClientError``,
    a call ``CommClosedError`` or ``OSError``. Each becomes a
    :class:`~palette_dask.errors.ClusterLostError` naming the scheduler; an
    error raised while the client is connected is left as it is.
    """
    address = getattr(client.scheduler, "address", None) or "of the run"
    try:
        yield
    except ClusterLostError:
        raise
    except Exception as exc:
        cancelled = isinstance(exc, FutureCancelledError) and exc.reason == CONNECTION_LOST
        if not (cancelled or isinstance(exc, ClosedClientError) or client.status != "running"):
            raise
        why = (
            "the connection closed"
            if cancelled or isinstance(exc, CommClosedError)
            else "the client is closed"
            if isinstance(exc, ClosedClientError)
            else f"{type(exc).__name__}: {one_line(exc)}"
        )
        raise ClusterLostError(f"lost the scheduler {address} ({why})") from None


class _RetryPolicy(WorkerPlugin):
    """Sets a run's retry policy on each worker, those that join later too."""

    name = "palette-dask-retry-policy"

    def __init__(self, policy: retry.Retry):
        self.policy = policy

    def setup(self, worker) -> None:
        retry.use(self.policy)


def share_retry_policy(client: Client, policy: retry.Retry) -> None:
    """Make ``policy`` the one this process and every worker of ``client`` reads remote files with."""
    retry.use(policy)
    client.register_plugin(_RetryPolicy(policy))


def dashboard_link(client: Client) -> str | None:
    """The client's dashboard URL, or None when it has none.

    For a LocalCluster this is the address the dashboard really listens on
    (127.0.0.1), not the host's network address dask would print.
    """
    scheduler = getattr(client.cluster, "scheduler", None)
    server = getattr(scheduler, "http_server", None)
    if server is not None and "dashboard" in getattr(scheduler, "services", {}):
        return f"http://127.0.0.1:{server.port}/status"
    try:
        return client.dashboard_link
    except Exception:  # no dashboard (bokeh missing, or dashboard_address=None)
        return None
