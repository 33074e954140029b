"""The direct sockets' keep-alive sweep (``DirectRoute.keep_alive``) leaves the rooms their turn."""

from __future__ import annotations

from typing import Any, cast

import trio

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


async def test_the_sweep_pings_a_batch_at_a_time_with_the_rooms_in_between() -> None:
    """Written in one task step, 10,000 pings held every room for ~200 ms."""
    log: list[str] = []
    route = DirectRoute(cast("Any", None), read_timeout=60.0)
    now = websocket.monotonic()
    count = 2 * KEEP_ALIVE_BATCH + 50
    sockets = [_Socket(log, now + 3600) for _ in range(count)]
    sockets[7].last_received = now - 3600  # silent for longer than the read timeout
    route._sockets = cast("Any", set(sockets))

    async def room() -> None:
        """Another task, taking each turn it gets until the sweep is over."""
        while len(log) - log.count("room") < count:
            log.append("room")
            await trio.lowlevel.checkpoint()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(route.keep_alive, 0.01)
            await room()
            nursery.cancel_scope.cancel()
    sweep = log[next(i for i, event in enumerate(log) if event != "room") :]
    runs = [len(run) for run in "".join("x" if e != "room" else " " for e in sweep).split()]
    assert sum(runs) == count  # every socket once: pinged, or aborted when silent
    assert log.count("abort") == 1
    assert max(runs) <= KEEP_ALIVE_BATCH
