"""Workers that always retire before a task ends: that task is given up, not waited for (issue 33)."""

import time

import pytest
from distributed import Client
from distributed.client import FutureCancelledError
from helpers import dask_scheduler

from palette_dask.run.tasks import STALLED, STALLED_AFTER, Pass

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def retirements(client, *, expected: bool = True) -> list[dict]:
    """The scheduler's events of a worker that retired (or, not ``expected``, died) while running tasks."""
    return [
        event
        for _, event in client.get_events("all")
        if event.get("action") == "remove-worker"
        and bool(event.get("expected")) == expected
        and event.get("processing-tasks")
    ]


def test_a_task_whose_workers_retire_under_it_every_time_is_given_up_alone(tmp_path):
    with dask_scheduler(tmp_path) as (address, start_worker, _):
        # a worker that retires 3 s after it starts (its timer starts before it registers: a loaded
        # machine takes a while to register it), and is started again by its nanny once the task it
        # ran ends (a retiring worker lets it end, though the scheduler gave it away); the task takes
        # 8 s, longer than any life even if the worker registered at once. Another worker, which stays,
        # holds the healthy task's result: a sole worker could not hand it on when it retires, and
        # would leave as a death
        lifetime = ["--lifetime", "3s", "--lifetime-stagger", "0s", "--lifetime-restart"]
        for name, options in (("mortal", lifetime), ("stays", [])):
            start_worker("--nthreads", "1", "--name", name, *options)
        with Client(address, timeout=30) as client:
            seen = []  # the user's own handler of every event: still called while the pass follows them

            def users(event):
                seen.append(event)

            client.subscribe_topic("all", users)
            tasks = Pass()
            tasks.submit("healthy", lambda: client.submit(sum, [1, 2], pure=False, workers=["stays"]))
            tasks.submit("endless", lambda: client.submit(time.sleep, 8, pure=False, workers=["mortal"]))
            while len(retirements(client)) < STALLED_AFTER:  # the pass follows the events from now on
                assert not retirements(client, expected=False), "a worker died rather than retired"
                time.sleep(0.2)
            # only now are its results taken: the healthy task, finished long ago and still held by the
            # pass, is not cancelled with the stalled one
            found = {key: (result, error) for key, result, error in tasks}
            assert client._event_handlers["all"] is users  # the user's handler, back as it was
            retired = retirements(client)
    # the fault happened: workers retired under the sleeping task, which dask does not count
    assert len(retired) >= STALLED_AFTER
    assert all(any("sleep" in str(key) for key in event["processing-tasks"]) for event in retired), retired
    # the user's handler saw them too: the pass chained to it rather than replacing it
    assert sum(1 for _, event in seen if isinstance(event, dict) and event.get("action") == "remove-worker")
    assert found["healthy"] == (3, None)  # the other task of the pass is not cancelled with it
    result, error = found["endless"]
    assert result is None and isinstance(error, FutureCancelledError) and error.reason == STALLED
