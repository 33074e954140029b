"""A live room driven through fake sockets: the shell's own rules, without a network.

The engine is tested in tests/core; here the point is what the trio shell adds:
heartbeats never reach the database, a slow socket is dropped without slowing
the others, and ending a room tells every connection why before it stops.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import trio
import trio.testing

from syncplayd.clocks import ServerClock
from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.server.live.connection import OUTBOX_SIZE, Connection
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.supervisor import RoomSupervisor
from syncplayd.service import RoomService
from syncplayd.storage import MemoryRepository, NewEvent, Playback
from syncplayd.storage.errors import StorageUnavailable
from syncplayd.storage.records import ChatMessage, Role, Room

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class CountingRepository(MemoryRepository):
    """The verified in-memory repository, counting every write the room makes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.chat_down = False

    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        if self.chat_down:
            raise StorageUnavailable("database is down")
        return await super().create_chat_message(message)

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        self.writes.append("update_playback")
        await super().update_playback(room_id, playback)

    async def log_events(self, events: Sequence[NewEvent]) -> None:
        self.writes.append("log_events")
        await super().log_events(events)

    async def update_participant(self, room_id: UUID, user_id: UUID, **kwargs: Any) -> bool:
        self.writes.append("update_participant")
        return await super().update_participant(room_id, user_id, **kwargs)


@dataclass
class FakeSocket:
    """A server-side websocket double: frames in through a channel, frames out to a list."""

    stalled: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def __post_init__(self) -> None:
        self.to_server, self._inbox = trio.open_memory_channel[str | bytes](1000)

    async def send(self, data: str) -> None:
        if self.stalled:
            await trio.sleep_forever()  # a peer that never reads
        self.sent.append(json.loads(data))

    async def receive(self) -> str | bytes:
        return await self._inbox.receive()

    async def close(self, code: int, reason: str = "") -> None:
        self.close_code = code

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]


@dataclass
class World:
    repo: CountingRepository
    supervisor: RoomSupervisor
    service: RoomService
    room: Room
    nursery: trio.Nursery

    async def connect(self, name: str, socket: FakeSocket) -> Connection:
        principal = Principal(uuid4(), name)
        participant, _ = await self.repo.add_participant(
            self.room.id, principal.user_id, name, Role.MEMBER, NOW
        )
        live = await self.supervisor.live_room(self.room)
        connection = Connection(socket, principal, ServerClock().now)
        self.nursery.start_soon(connection.run_writer)
        self.nursery.start_soon(live.attach, connection, participant, self.room, [], None)
        await trio.testing.wait_all_tasks_blocked()
        return connection


# Every test here runs on the autojump clock, and asks for it itself: pytest-trio hands
# trio.run only a clock among the test function's own arguments, so one asked for by a
# fixture (``world``) was never installed and the tests slept for real (tests/clock_guard.py
# now fails such a test).


@pytest.fixture
async def world(tmp_path: Any) -> AsyncIterator[World]:
    env = {
        "SYNCPLAY_STATE_DIR": str(tmp_path),
        "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000",
    }
    settings = load_settings(None, env)
    repo = CountingRepository()
    service = RoomService(repo, settings.syncplay)
    persister = Persister(repo)
    supervisor = RoomSupervisor(settings, service, persister, ServerClock())
    service.live = supervisor
    owner = Principal(uuid4(), "owner")
    room = await service.create_room(
        owner, name="r", content_type="movie", content_id="1", is_public=True, password=None,
        max_participants=None,
    )  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(persister.run)
        await nursery.start(supervisor.run)
        yield World(repo, supervisor, service, room, nursery)
        nursery.cancel_scope.cancel()


async def test_heartbeats_never_touch_the_database(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    socket = FakeSocket()
    await world.connect("viewer", socket)
    await trio.sleep(2)  # let the join's own writes (presence) settle
    before = list(world.repo.writes)
    joined = socket.of_type("joined")[0]
    for i in range(200):
        await socket.to_server.send(json.dumps({
            "type": "heartbeat", "position": 0.0, "version": joined["playback"]["version"],
            "server_time": joined["server_time"] + i * 0.01,
        }))  # fmt: skip
        await trio.sleep(0.01)
    await trio.sleep(5)
    assert world.repo.writes == before


async def test_playback_changes_are_written_behind_in_one_batch(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    socket = FakeSocket()
    await world.connect("viewer", socket)
    await trio.sleep(2)
    world.repo.writes.clear()
    for _ in range(10):  # ten changes in quick succession
        await socket.to_server.send(json.dumps({"type": "play"}))
        await socket.to_server.send(json.dumps({"type": "pause"}))
    await trio.sleep(3)
    assert world.repo.writes.count("update_playback") == 1
    stored = await world.repo.get_room(world.room.id)
    assert stored is not None and stored.playback.version == 20


async def test_a_stalled_socket_is_dropped_and_others_get_everything(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    fast, stalled = FakeSocket(), FakeSocket(stalled=True)
    await world.connect("fast", fast)
    slow_connection = await world.connect("stalled", stalled)
    owner = Principal(world.room.owner_id, "owner")
    for i in range(OUTBOX_SIZE + 50):
        await world.service.post_chat(owner, world.room.id, f"message {i}")
    await trio.sleep(1)  # presence goes out once per window (PRESENCE_WINDOW_SECONDS)
    assert len(fast.of_type("chat")) == OUTBOX_SIZE + 50
    assert slow_connection.closing is not None and slow_connection.closing[0] == "too-slow"
    left = [m for m in fast.of_type("presence") if m["event"] == "disconnected"]
    assert [m["member"]["user_name"] for m in left] == ["stalled"]


async def test_ending_a_room_tells_every_connection_and_stops_it(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    sockets = [FakeSocket() for _ in range(3)]
    for i, socket in enumerate(sockets):
        await world.connect(f"v{i}", socket)
    live = await world.supervisor.live_room(world.room)
    await world.service.end_room(Principal(world.room.owner_id, "owner"), world.room.id)
    with trio.fail_after(5):
        await live.stopped.wait()
    for socket in sockets:
        assert socket.of_type("closing")[-1]["reason"] == "room-ended"
        assert socket.close_code == 4001
    assert world.supervisor.live_rooms == 0


async def test_a_database_outage_refuses_chat_but_sync_goes_on(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    socket = FakeSocket()
    await world.connect("viewer", socket)
    world.repo.chat_down = True
    await socket.to_server.send(json.dumps({"type": "chat", "message": "hi", "client_id": "c1"}))
    await socket.to_server.send(json.dumps({"type": "play"}))
    await trio.testing.wait_all_tasks_blocked()
    error = socket.of_type("error")[-1]
    assert (error["code"], error["ref"]) == ("unavailable", "c1")
    assert socket.of_type("playback")[-1]["playback"]["state"] == "playing"
    assert world.supervisor.live_rooms == 1


async def test_a_session_that_left_leaves_no_rate_bucket_behind(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    # Every leave and rejoin is a new session: a bucket per past session would only grow.
    live = await world.supervisor.live_room(world.room)
    stays, leaves = FakeSocket(), FakeSocket()
    for name, socket in (("stays", stays), ("leaves", leaves)):
        await world.connect(name, socket)
        await socket.to_server.send(json.dumps({"type": "ping", "id": 1, "t0": 0.0}))
    await trio.testing.wait_all_tasks_blocked()
    assert len(live._limits) == 2
    await leaves.to_server.send(json.dumps({"type": "leave"}))
    await trio.testing.wait_all_tasks_blocked()
    assert leaves.of_type("closing")[-1]["reason"] == "left"
    assert len(live._limits) == 1


async def test_a_burst_of_one_users_sessions_cannot_evict_a_prompt_reader(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Presence is coalesced per user: 300 sessions of one user cost a reader a message or two."""
    reader = FakeSocket()
    reader_connection = await world.connect("reader", reader)
    flooder = Principal(uuid4(), "flooder")
    participant, _ = await world.repo.add_participant(
        world.room.id, flooder.user_id, "flooder", Role.MEMBER, NOW
    )
    live = await world.supervisor.live_room(world.room)
    before = len(reader.of_type("presence"))
    # All in one scheduling batch: the reader's writer gets no turn in between.
    for _ in range(OUTBOX_SIZE + 44):
        connection = Connection(FakeSocket(), flooder, ServerClock().now)
        world.nursery.start_soon(connection.run_writer)
        world.nursery.start_soon(live.attach, connection, participant, world.room, [], None)
    await trio.sleep(1)
    assert reader_connection.closing is None
    about_flooder = [
        m for m in reader.of_type("presence")[before:] if m["member"]["user_name"] == "flooder"
    ]
    assert 1 <= len(about_flooder) <= 2
    assert about_flooder[-1]["member"]["sessions"] == OUTBOX_SIZE + 44
