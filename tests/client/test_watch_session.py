"""The Python client models a watch session: the media's end, the queue, next, readiness.

No daemon, as in ``test_player``: messages are dispatched by hand, and a fake socket
records what the client sends.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from syncplayd.client import ClientCore, ClientOptions, LocalPlayer, drift_action
from syncplayd.client._connection import Connection
from syncplayd.client._room import RoomView
from syncplayd.core.clock import DriftNone, ntp_sample
from syncplayd.core.protocol import (
    PlaybackChanged,
    PlaybackWire,
    QueueChanged,
    QueueInfo,
    QueueItemInfo,
    SyncCommand,
)
from tests.client.test_player import OFFSET, SETTINGS, Clock, client_at, joined_snapshot, to_local

FIRST, SECOND = "5f0c2a9e-7d41-4b8a-9e3c-1a2b3c4d5e6f", "0d9e8f7a-6b5c-4d3e-8f2a-1b0c9d8e7f6a"
QUEUE = QueueInfo(
    "r1",
    FIRST,
    SECOND,
    "none",
    False,
    [
        QueueItemInfo(FIRST, "movie", "a", "A", 10.0),
        QueueItemInfo(SECOND, "movie", "b", None, None),
    ],
)


def item_wire(
    state: str = "playing",
    position: float = 0.0,
    *,
    item: str | None = FIRST,
    duration: float | None = 10.0,
    version: int = 1,
    ended: bool = False,
    anchor: float = OFFSET,
) -> PlaybackWire:
    return PlaybackWire(
        state,  # type: ignore[arg-type]
        position,
        1.0,
        anchor,
        version,
        None,
        item,
        duration,
        ended,
    )


def test_the_player_stops_at_the_end_of_its_item() -> None:
    player = LocalPlayer(clock=lambda: 0.0)
    player.apply_playback(item_wire(position=7.0), OFFSET, to_local)
    player.update(0.0)
    assert player.item_id == FIRST
    assert player.end_time(0.0) == 3.0
    assert player.position(2.0) == 9.0 and not player.at_end(2.0)
    assert player.position(50.0) == 10.0 and player.at_end(50.0)
    # Without a known duration it plays on, and never "ends".
    player.apply_playback(item_wire(duration=None, version=2), OFFSET, to_local)
    player.update(0.0)
    assert player.position(50.0) == 50.0 and player.end_time(0.0) is None
    assert not player.at_end(50.0)


def test_the_rooms_end_stands_at_the_end() -> None:
    player = LocalPlayer(clock=lambda: 0.0)
    player.apply_playback(item_wire("paused", 10.0, ended=True, version=3), OFFSET, to_local)
    player.update(0.0)
    assert player.at_end(0.0) and player.end_time(0.0) is None


def test_no_drift_correction_against_a_room_past_its_end() -> None:
    """The room reads no further than its end: a player stopped there is in step."""
    player = LocalPlayer(clock=lambda: 0.0)
    room = item_wire(position=8.0)
    player.apply_playback(room, OFFSET, to_local)
    player.update(0.0)
    # 5 s later the room's formula says 13 s, but the item ends at 10: nobody is behind.
    action = drift_action(player, room, now=5.0, server_now=OFFSET + 5.0, settings=SETTINGS)
    assert isinstance(action, DriftNone)


def test_the_room_view_follows_the_queue() -> None:
    view = RoomView(chat_history=5)
    view.install(msgspec.structs.replace(joined_snapshot(), queue=QUEUE))
    assert view.queue == QUEUE
    assert view.item(SECOND) == QUEUE.items[1] and view.item("x") is None
    moved = msgspec.structs.replace(QUEUE, current_item_id=SECOND)
    view.apply(QueueChanged(moved))
    assert view.queue == moved
    view.install(joined_snapshot())  # a server before queues: no queue
    assert view.queue is None and view.item(FIRST) is None


def test_the_client_knows_the_current_item_and_the_end() -> None:
    clock = Clock()
    client = client_at(clock)
    client._dispatch(QueueChanged(QUEUE))
    client._dispatch(PlaybackChanged(item_wire(version=2), OFFSET, "item"))
    assert client.current_item == QUEUE.items[0] and not client.ended
    clock.now = 30.0
    assert client.room_position() == 10.0  # not 30: the item ended at 10
    end = item_wire("paused", 10.0, ended=True, version=3, anchor=OFFSET + 10)
    client._dispatch(PlaybackChanged(end, OFFSET + 10, "ended"))
    assert client.ended


class FakeSocket:
    """What a connection needs of trio-websocket's connection: frames out, recorded."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_message(self, data: str) -> None:
        self.sent.append(json.loads(data))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


def attached(client: ClientCore) -> FakeSocket:
    socket = FakeSocket()
    client._attach(socket, trio.CancelScope())  # type: ignore[arg-type]
    return socket


async def test_commands_name_the_current_item() -> None:
    client = client_at(Clock())
    socket = attached(client)
    with pytest.raises(ValueError, match="no queue item"):
        await client.next()  # the snapshot plays no item
    client._dispatch(QueueChanged(QUEUE))
    client._dispatch(PlaybackChanged(item_wire(version=2), OFFSET, "item"))
    await client.next()
    await client.previous(SECOND)
    await client.media(61.5)
    await client.report_ended()
    await client.set_ready()
    assert socket.sent == [
        {"type": "next", "current_item_id": FIRST},
        {"type": "previous", "current_item_id": SECOND},
        {"type": "media", "item_id": FIRST, "duration": 61.5},
        {"type": "ended", "item_id": FIRST},
        {"type": "readiness", "ready": True},
    ]
    with pytest.raises(ValueError, match="invalid Media"):
        await client.media(-1.0)  # the server's own validation, before sending


async def test_the_client_reports_each_end_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client = ClientCore(trio.current_time, None, ClientOptions())
    client._estimator.add(ntp_sample(0.0, OFFSET, OFFSET, 0.0))  # server = local + OFFSET
    client._install(joined_snapshot())
    socket = attached(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._scheduler)
        nursery.start_soon(Connection(client, socket)._end_reporter)  # type: ignore[arg-type]
        start = trio.current_time()
        client._dispatch(PlaybackChanged(item_wire(anchor=OFFSET + start), OFFSET + start, "play"))
        await trio.sleep(9.9)
        assert socket.of_type("ended") == []
        await trio.sleep(0.2)
        assert socket.of_type("ended") == [{"type": "ended", "item_id": FIRST}]
        # The room's end and a resync there say nothing new...
        t = OFFSET + trio.current_time()
        end = item_wire("paused", 10.0, ended=True, version=2, anchor=t)
        client._dispatch(PlaybackChanged(end, t, "ended"))
        client._dispatch(SyncCommand(end, 0.0))
        await trio.sleep(1.0)
        assert len(socket.of_type("ended")) == 1
        # ...the next item plays to its own end...
        t = OFFSET + trio.current_time()
        second = item_wire(item=SECOND, duration=4.0, version=3, anchor=t)
        client._dispatch(PlaybackChanged(second, t, "item"))
        await trio.sleep(4.5)
        assert socket.of_type("ended")[-1] == {"type": "ended", "item_id": SECOND}
        # ...and the same item started again (repeat one) ends again.
        t = OFFSET + trio.current_time()
        again = item_wire(item=SECOND, duration=4.0, version=4, anchor=t)
        client._dispatch(PlaybackChanged(again, t, "item"))
        await trio.sleep(4.5)
        assert socket.of_type("ended") == [
            {"type": "ended", "item_id": FIRST},
            {"type": "ended", "item_id": SECOND},
            {"type": "ended", "item_id": SECOND},
        ]
        nursery.cancel_scope.cancel()


async def test_no_end_reports_when_turned_off(autojump_clock: trio.testing.MockClock) -> None:
    client = ClientCore(trio.current_time, None, ClientOptions(report_end=False))
    client._estimator.add(ntp_sample(0.0, OFFSET, OFFSET, 0.0))
    client._install(joined_snapshot())
    socket = attached(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._scheduler)
        nursery.start_soon(Connection(client, socket)._end_reporter)  # type: ignore[arg-type]
        t = OFFSET + trio.current_time()
        client._dispatch(PlaybackChanged(item_wire(anchor=t), t, "play"))
        await trio.sleep(20)
        assert socket.sent == []
        nursery.cancel_scope.cancel()
