"""A run's Stop (:class:`~palette_dask.run.tasks.RunStop`): its passes' tasks, no other of the client's."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

from helpers import workers_busy

from palette_dask import connect
from palette_dask.run.tasks import STOPPED, Pass, RunStop


def drained(tasks: Pass) -> tuple[threading.Thread, list]:
    """``tasks`` iterated in a thread of its own: the thread, and the errors it raised (one, if any)."""
    raised: list = []

    def drain():
        try:
            list(tasks)
        except CancelledError as exc:
            raised.append(exc)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread, raised


def test_a_run_s_stop_cancels_its_passes_tasks_alone_and_submits_none_again(client):
    with connect(client.scheduler.address) as caller:
        again, stop = [], RunStop()

        def square(n):
            return caller.submit(pow, n, 2, pure=False)

        with workers_busy(client):  # every task waits: stopped while it does
            with stop.running():
                tasks = Pass()  # the run's
            outside = Pass()  # another run's, on the same client
            own = caller.submit(pow, 5, 2, pure=False)  # the caller's own future
            for n in range(2):
                tasks.submit(n, lambda n=n: square(n), again=lambda n=n: again.append(n) or square(n))
                outside.submit(n, lambda n=n: square(n + 10))
            thread, raised = drained(tasks)
            stop.stop()
            thread.join(timeout=60)
            assert not thread.is_alive(), "the stopped pass still waits"
            assert [exc.reason for exc in raised] == [STOPPED]
            assert again == []  # none submitted again

            # a task submitted after the stop (by the pass, or a later pass of the run): cancelled at once
            tasks.submit(9, lambda: square(9))
            with stop.running():
                later = Pass()
            later.submit(0, lambda: square(3))
            for stopped in (tasks, later):
                thread, raised = drained(stopped)
                thread.join(timeout=60)
                assert not thread.is_alive() and [exc.reason for exc in raised] == [STOPPED]
        # the other run's tasks, the caller's future and a later run on the client: left alone
        assert sorted(value for _, value, error in outside if error is None) == [100, 121]
        assert own.result(timeout=60) == 25
        fresh = Pass()
        fresh.submit(0, lambda: square(7))
        assert [value for _, value, _ in fresh] == [49]
