"""Cluster: the dask.distributed client a run computes on.

By default a :class:`~distributed.LocalCluster` is started in-process, with
its dashboard bound to 127.0.0.1; ``scheduler`` attaches to a running cluster
by address instead, or an existing :class:`~distributed.Client` is used as is.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

from distributed import Client, LocalCluster

from .errors import ClusterError

__all__ = ["connect", "dashboard_link"]

#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 10


@contextlib.contextmanager
def connect(
    scheduler: str | Client | None = None,
    *,
    processes: bool = True,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard_address: str = "127.0.0.1:8787",
    timeout: float = CONNECT_TIMEOUT,
) -> Iterator[Client]:
    """A client for one run: the one given, one attached to ``scheduler``, or a new LocalCluster.

    What this context starts, it closes on exit; a client that was passed in stays open.
    The LocalCluster's dashboard and its workers' HTTP servers listen on 127.0.0.1
    only (``dashboard_address`` chooses the port; distributed would take None
    for "every interface").

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
    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach a dask scheduler at {scheduler!r} within {timeout:g} s ({exc}); "
                "pass an address such as tcp://127.0.0.1:8786"
            ) from None
        with client:
            yield client
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")  # another port is taken
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            host="127.0.0.1" if processes else None,  # threads talk in-process, no socket
            dashboard_address=dashboard_address,
            worker_dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        )
    with cluster, Client(cluster) as client:
        yield client


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
