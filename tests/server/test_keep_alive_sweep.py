"""The direct sockets' keep-alive sweep (``DirectRoute.keep_alive``) leaves the rooms their turn."""

from __future__ import annotations

from typing import Any, cast

import trio
import trio.lowlevel

from syncplayd.server.live import websocket
from syncplayd.server.live.websocket import KEEP_ALIVE_BATCH, DirectRoute


class _Socket:
    """What the sweep reads and calls of a ``DirectSocket``, noting each call in ``log``."""

    def __init__(self, log: list[str], last_received: float) -> None:
        self.log = log
        self.last_received = last_received

    def ping(self) -> None:
        self.log.append("ping")

    def abort(self, reason: str) -> None:
        self.log.append("abort")


class _CallsPerStep(trio.abc.Instrument):
    """How many sockets one task's each step (run between two checkpoints) wrote to.

    Per step, not by the order of events in the log: trio reverses a batch of runnable
    tasks at random, so another task may run before the sweep's step in one batch and
    after its next step in the following one, and two steps then sit side by side.
    """

    def __init__(self, task: trio.lowlevel.Task, log: list[str]) -> None:
        self.task = task
        self.log = log
        self.steps: list[int] = []
        self._before = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self._before = len(self.log)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task and len(self.log) > self._before:
            self.steps.append(len(self.log) - self._before)


async def test_the_sweep_pings_a_batch_at_a_time_with_the_rooms_in_between() -> None:
    """Written in one task step, 10,000 pings held every room for ~200 ms."""
    log: list[str] = []
    route = DirectRoute(cast("Any", None), read_timeout=60.0)
    now = websocket.monotonic()
    count = 2 * KEEP_ALIVE_BATCH + 50
    sockets = [_Socket(log, now + 3600) for _ in range(count)]
    sockets[7].last_received = now - 3600  # silent for longer than the read timeout
    route._sockets = cast("Any", set(sockets))
    swept = trio.Event()

    async def sweep(task_status: trio.TaskStatus[_CallsPerStep]) -> None:
        instrument = _CallsPerStep(trio.lowlevel.current_task(), log)
        trio.lowlevel.add_instrument(instrument)
        task_status.started(instrument)
        try:
            await route.keep_alive(0.01)
        finally:
            trio.lowlevel.remove_instrument(instrument)

    async def watch() -> None:
        while len(log) < count:
            await trio.lowlevel.checkpoint()
        swept.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            instrument = await nursery.start(sweep)
            nursery.start_soon(watch)
            await swept.wait()
            nursery.cancel_scope.cancel()
    # The first sweep (a stalled machine may have begun the next one by now): every
    # socket once, pinged or aborted when silent, a batch per step.
    assert instrument.steps[:3] == [KEEP_ALIVE_BATCH, KEEP_ALIVE_BATCH, 50]
    assert log[:count].count("abort") == 1
