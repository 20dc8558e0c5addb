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
that keeps killing its workers is handed back as failed. Workers that
retire while running tasks are not counted by dask (only deaths are): a pass
whose workers keep retiring under the same task stops waiting
(:data:`STALLED_AFTER`), so a run never waits for ever on workers whose
lifetime is shorter than a task. Errors raised by
the task's own work are handed back at once: the pass decides. A future
cancelled because the client lost its scheduler is not submitted again: the
error goes up, for :func:`~palette_dask.run.cluster.scheduler_kept` to say so.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Callable, Hashable, Iterator

from distributed import Future, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

__all__ = ["Pass", "CLUSTER_FAILURES", "RESUBMIT", "CONNECTION_LOST", "STALLED_AFTER", "memory_limit_killed"]

#: Failures of the cluster, not of the image: a task whose workers kept dying, or one lost for good.
CLUSTER_FAILURES = (KilledWorker, FutureCancelledError)
#: A task lost by the cluster is submitted again at most this many times.
RESUBMIT = 3
#: The reason distributed gives the futures it cancels when the client loses its scheduler.
CONNECTION_LOST = "scheduler-connection-lost"
#: A pass stops waiting once workers retired this many times while running the same task (as dask's
#: allowed-failures + 1 do for deaths): its pending tasks are cancelled and handed back as lost.
STALLED_AFTER = 4
#: The reason given to the tasks of a pass that stopped waiting (see :data:`STALLED_AFTER`).
STALLED = "workers-retired-under-its-tasks"


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
        self._tries: collections.Counter = collections.Counter()
        self._client = None  # the client of its futures, whose scheduler's events it follows
        self._retired: collections.Counter = collections.Counter()  # task key → workers retired under it
        self._fetching: Future | None = None  # the future whose result is being fetched

    def submit(self, key: Hashable, first: Callable[[], Future], again: Callable[[], Future] | None = None):
        """Submit a task: ``first()`` submits it and returns its future.

        ``again()`` (by default ``first``) submits it anew, from scratch, after the cluster lost it.
        """
        self._again[key] = again or first
        self._add(key, first())

    def _add(self, key: Hashable, future: Future) -> None:
        self._keys[future] = key
        self._futures.add(future)
        if self._client is None:
            self._client = future.client
            self._client.subscribe_topic("all", self._on_event)

    async def _on_event(self, event) -> None:
        """Count the workers that retired under each task; once one is stalled, cancel this pass's tasks.

        A worker that retires (``--lifetime``, ``retire_workers``) hands its
        running tasks back to the scheduler without counting it against them,
        as a death would be (``allowed-failures``, then KilledWorker): workers
        whose lifetime is shorter than a task (a loaded machine, a short
        ``--lifetime``) would take the task with them for ever.
        """
        _, message = event
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            return
        if not (message.get("expected") and message.get("processing-tasks")):
            return
        self._retired.update(str(key) for key in message["processing-tasks"])  # tuples come as lists
        if max(self._retired.values()) == STALLED_AFTER:
            pending = [*self._keys, *([self._fetching] if self._fetching is not None else [])]
            await self._client.cancel(
                pending, asynchronous=True, reason=STALLED,
                msg=f"workers retired {STALLED_AFTER} times while running one of its tasks",
            )  # fmt: skip

    def _stop_following(self) -> None:
        """Stop following the scheduler's events, unless a later pass follows them now."""
        handlers = getattr(self._client, "_event_handlers", {})
        if self._client is not None and handlers.get("all") == self._on_event:
            with contextlib.suppress(Exception):  # a client without its scheduler: nothing to stop
                self._client.unsubscribe_topic("all")

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
                self._fetching = future
                result = future.result()
                self._fetching = None
                yield key, result, None
                continue
            except CLUSTER_FAILURES as exc:
                self._fetching = None
                if getattr(exc, "reason", None) == CONNECTION_LOST:  # no scheduler to submit it to
                    raise
                if self._tries[key] >= RESUBMIT or getattr(exc, "reason", None) == STALLED:
                    future.release()
                    yield key, None, exc
                    continue
            except Exception as exc:  # the task's own error: the pass decides
                self._fetching = None
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
