"""Changes told to another node: what one node publishes, the other applies, with the same
arguments. The NOTIFY transport itself runs against PostgreSQL in tests/e2e/test_cluster.py;
here the payload goes from one node's ``ClusterRooms`` to another's ``Cluster`` directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
import trio

from syncplayd.clocks import ServerClock
from syncplayd.server.live.cluster import Cluster, ClusterRooms, NodeIdentity
from syncplayd.storage import MemoryRepository
from syncplayd.storage.cluster import ClusterLink


class Rooms:
    """A node's live rooms, as far as these notifications go: which are here, what came."""

    def __init__(self, here: set[UUID]) -> None:
        self.here = here
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def is_live_here(self, room_id: UUID) -> bool:
        return room_id in self.here

    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        self.calls.append(("mute_changed", (room_id, user_id), {"muted": muted, "until": until}))


def node(name: str, rooms: Rooms) -> Cluster:
    link = cast("ClusterLink", object())  # never used: nothing here runs the node's tasks
    cluster = Cluster(
        MemoryRepository(), "postgresql://unused", NodeIdentity(name, ""), ServerClock(), link
    )
    cluster.attach(cast("Any", rooms))
    return cluster


async def test_a_timed_mute_reaches_the_node_that_runs_the_room_with_its_end() -> None:
    room, user = uuid4(), uuid4()
    until = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)
    here, there = Rooms(set()), Rooms({room})
    sender, receiver = node("a", here), node("b", there)
    rooms = ClusterRooms(cast("Any", here), sender)
    rooms.mute_changed(room, user, muted=True, until=until)
    rooms.mute_changed(room, user, muted=False)
    for _ in range(2):
        await receiver._dispatch(sender._outbox.receive_nowait())
    assert here.calls == []
    assert there.calls == [
        ("mute_changed", (room, user), {"muted": True, "until": until}),
        ("mute_changed", (room, user), {"muted": False, "until": None}),
    ]


async def test_a_mute_for_a_room_live_here_stays_here() -> None:
    room, user = uuid4(), uuid4()
    here = Rooms({room})
    sender = node("a", here)
    until = datetime.now(UTC) + timedelta(minutes=5)
    ClusterRooms(cast("Any", here), sender).mute_changed(room, user, muted=True, until=until)
    assert here.calls == [("mute_changed", (room, user), {"muted": True, "until": until})]
    with pytest.raises(trio.WouldBlock):  # nothing was published
        sender._outbox.receive_nowait()
