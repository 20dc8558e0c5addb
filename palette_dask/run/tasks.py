"""Tasks: the tasks of one pass, awaited as they finish, and submitted again when the cluster loses them.

Workers leave in every long job: a SLURM walltime, ``--lifetime``, a
retirement, a lost node. dask recomputes what a leaving worker held when it
can (the scheduler keeps the task's definition while a client holds its
future), and a result that was being moved comes back once recomputed. What
it cannot recompute (data scattered from the driver, a dependency forgotten
on the way) ends as a cancelled future; and a task under which workers left
more than ``distributed.scheduler.allowed-failures`` times (retiring at
their lifetime counts) ends as :class:`~distributed.scheduler.KilledWorker`.
:class:`Pass` submits either again from scratch, through the function given
for it, a few times, so a run never fails for workers that left; only a task
that keeps killing its workers is handed back as failed; one whose last
worker its nanny restarted beyond its memory limit is handed back at once
(``fails_alone``): submitted again, it would kill its workers as many times
more. Workers that retire while running tasks are not counted by dask (only
deaths are): a task of a pass under which workers retired
:data:`STALLED_AFTER` times is cancelled and handed back, so a run never
waits for ever on workers whose lifetime is shorter than a task (the tasks
counted are the pass's own futures; the inner tasks of a tiled image's graph
are not). Errors raised by the task's own work are handed back at once: the pass decides. A future
cancelled because the client lost its scheduler is not submitted again: the
error goes up, for :func:`~palette_dask.run.cluster.scheduler_kept` to say so;
nor is one its caller stopped (:class:`RunStop`): that error goes up as it is.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import inspect
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator

import dask
from distributed import Future, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

__all__ = [
    "Pass", "CLUSTER_FAILURES", "RESUBMIT", "CONNECTION_LOST", "STALLED_AFTER", "memory_limit_killed",
    "deaths_per_try", "STOPPED", "RunStop",
]  # fmt: skip

#: Failures of the cluster, not of the image: a task whose workers kept dying, or one lost for good.
CLUSTER_FAILURES = (KilledWorker, FutureCancelledError)
#: A task lost by the cluster is submitted again at most this many times.
RESUBMIT = 3
#: The reason distributed gives the futures it cancels when the client loses its scheduler.
CONNECTION_LOST = "scheduler-connection-lost"
#: A task of a pass under which workers retired this many times (as dask's allowed-failures + 1
#: deaths do) is cancelled and handed back as lost; its other tasks go on.
STALLED_AFTER = 4
#: The reason given to a task cancelled because workers kept retiring under it (see :data:`STALLED_AFTER`).
STALLED = "workers-retired-under-its-tasks"
#: The reason given to the futures of a run its caller stops (:class:`RunStop`): raised, never resubmitted.
STOPPED = "stopped-by-the-caller"
_STOPPED_MESSAGE = "the run was stopped by its caller"


class _Follower:
    """The one handler of a client's ``all`` topic while passes follow it.

    It calls each pass's, then the handler that was there before (a user's),
    which it puts back once no pass follows the topic.
    """

    def __init__(self, client):
        self.client = client
        self.previous = client._event_handlers.get("all")
        self.passes: list[Pass] = []

    async def __call__(self, event) -> None:
        for tasks in list(self.passes):
            await tasks._on_event(event)
        if self.previous is not None:
            returned = self.previous(event)
            if inspect.isawaitable(returned):
                await returned

    def add(self, tasks: Pass) -> None:
        self.passes.append(tasks)
        if self.client._event_handlers.get("all") is not self:
            self.previous = self.client._event_handlers.get("all")
            self.client.subscribe_topic("all", self)

    def remove(self, tasks: Pass) -> None:
        with contextlib.suppress(ValueError):
            self.passes.remove(tasks)
        if self.passes or self.client._event_handlers.get("all") is not self:
            return
        _followers.pop(self.client, None)
        with contextlib.suppress(Exception):  # a client without its scheduler: nothing to stop
            if self.previous is not None:
                self.client.subscribe_topic("all", self.previous)  # the user's handler, as it was
            else:
                self.client.unsubscribe_topic("all")
                self.client._event_handlers.pop("all", None)


_followers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # client → its _Follower
_run_stop: contextvars.ContextVar = contextvars.ContextVar("palette_dask_run_stop", default=None)


class RunStop:
    """The Stop of one run: the tasks of the passes made under :meth:`running`, and those they submit after.

    How a caller running :func:`~palette_dask.extract_palette` in a thread
    stops it from another (the napari widget's Stop): the run is called
    inside ``with stop.running():`` (in its own thread), and :meth:`stop`
    cancels its passes' tasks as :data:`STOPPED`; the pass awaiting one
    raises its FutureCancelledError and the run ends as an interrupted one
    does, its store kept when it holds a batch. A task one of them submits
    later is cancelled at once. Other futures of the client (another run's,
    the caller's own) are left alone, and the client serves later runs.
    Work outside the passes (a ``dask.compute``: the fit, the label
    rasters' writes) finishes; a run between passes stops at its report's
    next line when the report raises (as the widget's does once stopped).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._stopped = False
        self._passes: weakref.WeakSet = weakref.WeakSet()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    @contextlib.contextmanager
    def running(self):
        """The passes made in this context (this thread) are the run's: :meth:`stop` stops them."""
        token = _run_stop.set(self)
        try:
            yield self
        finally:
            _run_stop.reset(token)

    def stop(self) -> None:
        """Cancel the tasks of the run's passes as :data:`STOPPED`, and any they submit from now on."""
        with self._lock:  # with Pass._add's: a future is either seen here, or cancelled there
            self._stopped = True
            futures = [future for tasks in list(self._passes) for future in list(tasks._live.values())]
        by_client = collections.defaultdict(list)
        for future in futures:
            by_client[future.client].append(future)
        for client, group in by_client.items():
            with contextlib.suppress(Exception):  # a client without its scheduler: nothing to stop
                client.cancel(group, reason=STOPPED, msg=_STOPPED_MESSAGE)


def _name(key) -> str:
    """A task's key as text, the same whether it came from a future or an event (where tuples are lists)."""
    return str(tuple(map(_name, key))) if isinstance(key, list | tuple) else str(key)


def deaths_per_try() -> int:
    """How many times workers die under a task before dask gives it up (KilledWorker).

    ``distributed.scheduler.allowed-failures`` + 1, as this process's configuration says.
    """
    return int(dask.config.get("distributed.scheduler.allowed-failures")) + 1


class Pass:
    """The tasks of one pass, each under a key (a batch's range, an image's index).

    Examples
    --------
    >>> from palette_dask import connect
    >>> with connect(processes=False, n_workers=1, dashboard_address="127.0.0.1:0") as client:
    ...     tasks = Pass()
    ...     for n in (2, 3):
    ...         tasks.submit(n, lambda n=n: client.submit(pow, n, 2))
    ...     sorted((key, value) for key, value, error in tasks)
    [(2, 4), (3, 9)]
    """

    def __init__(self):
        self._futures = as_completed()
        self._keys: dict[Future, Hashable] = {}
        self._again: dict[Hashable, Callable[[], Future]] = {}
        self._alone: set[Hashable] = set()  # keys whose task fails alone when it kills workers' memory
        self._tries: collections.Counter = collections.Counter()
        self._client = None  # the client of its futures, whose scheduler's events it follows
        self._live: dict[str, Future] = {}  # this pass's futures not yet handed back, by their task's key
        self._retired: collections.Counter = collections.Counter()  # task key → workers retired under it
        self._stop: RunStop | None = _run_stop.get()  # the run's Stop, when its caller gave one
        if self._stop is not None:
            self._stop._passes.add(self)

    def submit(
        self, key: Hashable, first: Callable[[], Future], again: Callable[[], Future] | None = None,
        *, fails_alone: bool = False,
    ):  # fmt: skip
        """Submit a task: ``first()`` submits it and returns its future.

        ``again()`` (by default ``first``) submits it anew, from scratch, after
        the cluster lost it. With ``fails_alone`` (a tiled image's task), a
        KilledWorker whose last worker died of its memory limit is handed back
        at once (see :func:`memory_limit_killed`); without it (a batch, whose
        images are small: its workers died for another task), it is submitted again.
        """
        self._again[key] = again or first
        if fails_alone:
            self._alone.add(key)
        self._add(key, first())

    def _add(self, key: Hashable, future: Future) -> None:
        with self._stop._lock if self._stop is not None else contextlib.nullcontext():
            if self._stop is not None and self._stop.stopped:  # submitted as its run was stopped: raised
                future.cancel(reason=STOPPED, msg=_STOPPED_MESSAGE)
            self._live[_name(future.key)] = future
        self._keys[future] = key
        self._futures.add(future)
        if self._client is None:
            self._client = future.client
            follower = _followers.get(self._client)
            if follower is None:
                follower = _followers[self._client] = _Follower(self._client)
            follower.add(self)

    async def _on_event(self, event) -> None:
        """Count the workers that retired under each of this pass's tasks; cancel a task once stalled.

        A worker that retires (``--lifetime``, ``retire_workers``) hands its
        running tasks back to the scheduler without counting it against them,
        as a death would be (``allowed-failures``, then KilledWorker): workers
        whose lifetime is shorter than a task (a loaded machine, a short
        ``--lifetime``) would take the task with them for ever. Only the keys
        of this pass's own futures are counted (not another client's tasks,
        nor the inner tasks of a graph), and only the stalled task is cancelled.
        """
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        if not (message.get("expected") and message.get("processing-tasks")):
            return
        stalled = []
        for key in map(_name, message["processing-tasks"]):
            future = self._live.get(key)
            if future is None:
                continue
            self._retired[key] += 1
            if self._retired[key] == STALLED_AFTER:
                stalled.append(future)
        if stalled:
            await self._client.cancel(
                stalled, asynchronous=True, reason=STALLED,
                msg=f"workers retired {STALLED_AFTER} times while running it",
            )  # fmt: skip

    def _stop_following(self) -> None:
        """Stop following the scheduler's events; the topic's handler before the first pass is put back."""
        follower = _followers.get(self._client) if self._client is not None else None
        if follower is not None:
            follower.remove(self)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[tuple[Hashable, object, BaseException | None]]:
        """``(key, result, None)`` or ``(key, None, error)`` for each task, as they finish.

        A result whose worker left after it finished is waited for while dask
        recomputes it; a task the cluster lost (:data:`CLUSTER_FAILURES`) is
        submitted again, up to :data:`RESUBMIT` times, and only then handed back with its error.
        """
        try:
            yield from self._each()
        finally:
            self._stop_following()

    def _each(self) -> Iterator[tuple[Hashable, object, BaseException | None]]:
        for future in self._futures:
            key = self._keys.pop(future)
            try:
                result = future.result()
                self._live.pop(_name(future.key), None)
                yield key, result, None
                continue
            except CLUSTER_FAILURES as exc:
                self._live.pop(_name(future.key), None)
                if getattr(exc, "reason", None) in (CONNECTION_LOST, STOPPED):  # no scheduler, or stopped
                    raise
                if (
                    self._tries[key] >= RESUBMIT
                    or getattr(exc, "reason", None) == STALLED
                    or (key in self._alone and memory_limit_killed(self._client, exc) is not None)
                ):
                    future.release()
                    yield key, None, exc
                    continue
            except Exception as exc:  # the task's own error: the pass decides
                self._live.pop(_name(future.key), None)
                future.release()  # forgotten now: a later run on this client (a resume) computes it anew
                yield key, None, exc
                continue
            future.release()  # lost: forgotten first (in the order of messages), then submitted again
            self._tries[key] += 1
            self._add(key, self._again[key]())


def memory_limit_killed(client, exc: BaseException) -> int | None:
    """The workers' memory limit when ``exc`` is a KilledWorker whose last worker died of its memory.

    A nanny restarts its worker when the process passes
    ``distributed.worker.memory.terminate`` (95%) of its memory limit, and logs
    a ``worker-restart-memory`` event on the scheduler naming it. None when
    the worker died otherwise (or the scheduler cannot say).
    """
    if not isinstance(exc, KilledWorker):
        return None
    worker = exc.last_worker  # its state as the scheduler last knew it
    try:
        events = client.get_events("worker-restart-memory")
    except Exception:  # the scheduler cannot say: a death like another
        return None
    if not any(event.get("worker") == getattr(worker, "address", None) for _, event in events):
        return None
    return getattr(worker, "memory_limit", None) or None
