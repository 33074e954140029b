"""A live room driven through fake sockets: the shell's own rules, without a network.

The engine is tested in tests/core; here the point is what the trio shell adds:
heartbeats never reach the database, a slow socket is dropped without slowing
the others, and ending a room tells every connection why before it stops.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import trio
import trio.testing

from syncplayd.clocks import ServerClock
from syncplayd.config import load_settings
from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.http.state import AppState
from syncplayd.server.live.connection import OUTBOX_SIZE, Connection
from syncplayd.server.live.live_room import LiveRoom
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.supervisor import RoomSupervisor
from syncplayd.server.live.websocket import Handshake
from syncplayd.service import RoomChanges, RoomService, ServiceError
from syncplayd.storage import MemoryRepository, NewEvent, Playback, PresenceUpdate
from syncplayd.storage.errors import StorageUnavailable
from syncplayd.storage.records import (
    ChatMessage,
    PlaybackControl,
    Role,
    Room,
    Standing,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class CountingRepository(MemoryRepository):
    """The verified in-memory repository, counting every write the room makes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.chat_down = False
        self.standing_reads = 0
        self._holds: dict[int, trio.Event] = {}
        #: Set when a held read is waiting.
        self.read_held = trio.Event()

    def hold_standing_read(self, nth: int) -> trio.Event:
        """Hold the ``nth`` read of a user's standing (their ban and mute) from now, once
        it has read its answer, until the returned event is set (the answer may be stale
        by then)."""
        release = trio.Event()
        self._holds[self.standing_reads + nth] = release
        return release

    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        if self.chat_down:
            raise StorageUnavailable("database is down")
        return await super().create_chat_message(message)

    async def get_standing(self, room_id: UUID, user_id: UUID) -> Standing:
        found = await super().get_standing(room_id, user_id)
        self.standing_reads += 1
        release = self._holds.pop(self.standing_reads, None)
        if release is not None:
            self.read_held.set()
            await release.wait()
        return found

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        self.writes.append("update_playback")
        await super().update_playback(room_id, playback)

    async def log_events(self, events: Sequence[NewEvent]) -> None:
        self.writes.append("log_events")
        await super().log_events(events)

    async def update_participant(self, room_id: UUID, user_id: UUID, **kwargs: Any) -> bool:
        self.writes.append("update_participant")
        return await super().update_participant(room_id, user_id, **kwargs)

    async def record_presence(self, updates: Sequence[PresenceUpdate]) -> None:
        self.writes.append("record_presence")
        await super().record_presence(updates)


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

    @property
    def owner(self) -> Principal:
        return Principal(self.room.owner_id, "Olga")

    async def live(self) -> LiveRoom:
        """The room's live counterpart, started as a join starts it (with the stored queue)."""
        queue = await self.service.queue.get(self.owner, self.room.id)
        return await self.supervisor.live_room(self.room, queue)

    async def member(self, name: str) -> Principal:
        principal = Principal(uuid4(), name)
        await self.repo.add_participant(self.room.id, principal.user_id, name, Role.MEMBER, NOW)
        return principal

    async def connect(
        self, name: str, socket: FakeSocket, principal: Principal | None = None
    ) -> Connection:
        if principal is None:
            principal = await self.member(name)
        participant = await self.repo.get_participant(self.room.id, principal.user_id)
        assert participant is not None
        live = await self.live()
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


def _heartbeat_frame(joined: dict[str, Any], i: int, **extra: Any) -> str:
    """The ``i``-th heartbeat (one every 10 ms) of a member standing at 0 since ``joined``."""
    return json.dumps({
        "type": "heartbeat", "position": 0.0, "version": joined["playback"]["version"],
        "server_time": joined["server_time"] + i * 0.01,
    } | extra)  # fmt: skip


async def test_heartbeats_never_touch_the_database(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    socket = FakeSocket()
    await world.connect("viewer", socket)
    await trio.sleep(2)  # let the join's own writes (presence) settle
    before = list(world.repo.writes)
    joined = socket.of_type("joined")[0]
    for i in range(200):
        await socket.to_server.send(_heartbeat_frame(joined, i))
        await trio.sleep(0.01)
    await trio.sleep(5)
    assert world.repo.writes == before


async def test_a_heartbeats_round_trip_reaches_the_room(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """The ``rtt`` a heartbeat carries counts: a member far behind is shown as lagging."""
    watcher, laggard = FakeSocket(), FakeSocket()
    await world.connect("watcher", watcher)
    await world.connect("laggard", laggard)
    joined = laggard.of_type("joined")[0]
    for i in range(20):  # smoothed: a few samples before the average crosses the limit
        await laggard.to_server.send(_heartbeat_frame(joined, i, rtt=5.0))
        await trio.sleep(0.01)
    latency = [m for m in watcher.of_type("presence") if m["event"] == "latency"]
    assert [m["member"]["user_name"] for m in latency] == ["laggard"]


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
    live = await world.live()
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
    live = await world.live()
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
    live = await world.live()
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


# -- moderation reaches the sockets (service -> supervisor -> live room) --------------------


def _presence(socket: FakeSocket, event: str) -> list[dict[str, Any]]:
    return [m for m in socket.of_type("presence") if m["event"] == event]


async def test_roles_mutes_and_deleted_chat_reach_every_socket_the_member_included(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    ben_connection = await world.connect("Ben", ben)
    ben_id = ben_connection.principal.user_id
    moderation = world.service.moderation
    await moderation.set_role(world.owner, world.room.id, ben_id, Role.MODERATOR)
    await moderation.mute(world.owner, world.room.id, ben_id, reason="spoilers")
    await trio.testing.wait_all_tasks_blocked()
    for socket in (ada, ben):
        [role] = _presence(socket, "role")
        assert (role["member"]["user_id"], role["detail"]) == (str(ben_id), "moderator")
        [muted] = _presence(socket, "muted")
        assert muted["member"]["muted"] is True and muted["detail"] is None
    # The mute is the service's: Ben's chat is refused, with the reason.
    await ben.to_server.send(json.dumps({"type": "chat", "message": "x", "client_id": "c1"}))
    await trio.testing.wait_all_tasks_blocked()
    refused = ben.of_type("error")[-1]
    assert (refused["code"], refused["ref"]) == ("muted", "c1")
    assert "spoilers" in refused["message"]
    await moderation.unmute(world.owner, world.room.id, ben_id)
    message = await world.service.post_chat(ben_connection.principal, world.room.id, "hi")
    await moderation.delete_chat(world.owner, message.id, room_id=world.room.id)
    await trio.testing.wait_all_tasks_blocked()
    for socket in (ada, ben):
        [unmuted] = _presence(socket, "unmuted")
        assert unmuted["member"]["muted"] is False
        assert socket.of_type("chat_deleted") == [
            {"type": "chat_deleted", "room_id": str(world.room.id), "message_id": str(message.id)}
        ]
    # Roles and mutes are logged once, by the service, naming who acted.
    events, _ = await world.repo.list_events(world.room.id, 50, 0)
    kinds = [e.type for e in events if e.type in ("role", "muted", "unmuted")]
    assert sorted(kinds) == ["muted", "role", "unmuted"]


async def test_new_settings_reach_every_socket_and_govern_commands_at_once(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada = FakeSocket()
    await world.connect("Ada", ada)
    assert ada.of_type("joined")[0]["settings"]["control"] == "everyone"
    changes = RoomChanges(playback_control=PlaybackControl.MODERATORS, name="Late show")
    await world.service.update_room(world.owner, world.room.id, changes)
    await trio.testing.wait_all_tasks_blocked()
    [changed] = ada.of_type("room")
    assert changed["settings"]["control"] == "moderators"
    assert changed["room"]["playback_control"] == "moderators"
    assert changed["room"]["name"] == "Late show"
    await ada.to_server.send(json.dumps({"type": "play"}))
    await trio.testing.wait_all_tasks_blocked()
    assert ada.of_type("error")[-1]["code"] == "not-allowed"


async def test_a_ban_closes_the_users_sockets_with_banned_and_keeps_them_out(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben_phone, ben_tv = FakeSocket(), FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    ben = await world.member("Ben")
    await world.connect("Ben", ben_phone, ben)
    await world.connect("Ben", ben_tv, ben)
    await world.service.moderation.ban(world.owner, world.room.id, ben.user_id, reason="spoilers")
    await trio.sleep(1)  # comings and goings go out once per presence window
    for socket in (ben_phone, ben_tv):
        assert socket.of_type("closing")[-1] == {
            "type": "closing",
            "reason": "banned",
            "message": "Olga banned you from the room for good: spoilers",
        }
        assert socket.close_code == 4007
    left = _presence(ada, "left")[-1]
    assert (left["member"]["user_id"], left["member"]["sessions"]) == (str(ben.user_id), 0)
    assert ada.close_code is None
    # Coming back the way a resume does (the live room, not the REST join) is refused too.
    participant, _ = await world.repo.add_participant(
        world.room.id, ben.user_id, "Ben", Role.MEMBER, NOW
    )
    live = await world.live()
    connection = Connection(FakeSocket(), ben, ServerClock().now)
    with pytest.raises(ServiceError) as refused:
        await live.attach(connection, participant, world.room, [], None)
    assert refused.value.code == "banned"


async def test_a_member_muted_while_away_joins_muted(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben_socket = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    ben = await world.member("Ben")
    await world.service.moderation.mute(world.owner, world.room.id, ben.user_id)
    await world.connect("Ben", ben_socket, ben)
    await trio.sleep(1)
    assert ben_socket.of_type("joined")[0]["you"]["muted"] is True
    [joined] = _presence(ada, "joined")[-1:]
    assert joined["member"]["muted"] is True


async def test_a_timed_mute_ends_by_itself_for_everyone(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben_socket = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    ben = await world.connect("Ben", ben_socket)
    await world.service.moderation.mute(
        world.owner, world.room.id, ben.principal.user_id, expires_in=timedelta(seconds=20)
    )
    await trio.sleep(19)
    assert [m["member"]["user_id"] for m in _presence(ada, "muted")] == [str(ben.principal.user_id)]
    assert _presence(ada, "unmuted") == []
    await trio.sleep(2)
    [unmuted] = _presence(ada, "unmuted")
    assert unmuted["member"]["user_id"] == str(ben.principal.user_id)
    assert unmuted["member"]["muted"] is False
    assert _presence(ben_socket, "unmuted") != []  # Ben's own page sees it too


async def test_a_new_mute_replaces_the_timer_of_the_old_one(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada = FakeSocket()
    await world.connect("Ada", ada)
    ben = await world.connect("Ben", FakeSocket())
    user = ben.principal.user_id
    moderation = world.service.moderation
    await moderation.mute(world.owner, world.room.id, user, expires_in=timedelta(seconds=10))
    await moderation.mute(world.owner, world.room.id, user)  # until lifted, now
    await trio.sleep(25)
    assert _presence(ada, "unmuted") == []
    await moderation.unmute(world.owner, world.room.id, user)
    await moderation.mute(world.owner, world.room.id, user, expires_in=timedelta(seconds=10))
    await trio.sleep(11)
    assert len(_presence(ada, "unmuted")) == 2  # the unmute, then the second mute's end


async def test_a_member_muted_for_a_while_joins_muted_and_is_unmuted_at_the_end(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben_socket = FakeSocket(), FakeSocket()
    ben = await world.member("Ben")
    # Nobody is in: no live room to tell, the mute is only stored.
    await world.service.moderation.mute(
        world.owner, world.room.id, ben.user_id, expires_in=timedelta(seconds=20)
    )
    await trio.sleep(5)
    await world.connect("Ada", ada)
    await world.connect("Ben", ben_socket, ben)  # the room learns of the mute from storage
    assert ben_socket.of_type("joined")[0]["you"]["muted"] is True
    await trio.sleep(14)
    assert _presence(ada, "unmuted") == []
    await trio.sleep(2)
    [unmuted] = _presence(ada, "unmuted")
    assert unmuted["member"]["user_id"] == str(ben.user_id)


async def test_a_mute_stored_while_a_join_reads_it_is_not_lost(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """The join reads "not muted", the mute lands (the room has no session of Ben's to
    mute yet), then the join goes on: it must read again rather than let Ben in unmuted."""
    ben = await world.member("Ben")
    release = world.repo.hold_standing_read(1)
    ben_socket = FakeSocket()
    live = await world.live()
    connection = Connection(ben_socket, ben, ServerClock().now)
    participant = await world.repo.get_participant(world.room.id, ben.user_id)
    assert participant is not None
    world.nursery.start_soon(connection.run_writer)
    world.nursery.start_soon(live.attach, connection, participant, world.room, [], None)
    with trio.fail_after(5):
        await world.repo.read_held.wait()
    await world.service.moderation.mute(world.owner, world.room.id, ben.user_id)
    release.set()
    await trio.testing.wait_all_tasks_blocked()
    [joined] = ben_socket.of_type("joined")
    assert joined["you"]["muted"] is True


async def _attach_while_held(
    world: World, principal: Principal, socket: FakeSocket
) -> tuple[trio.Event, list[ServiceError]]:
    """Start Ben's attach with the membership the service's join read, and hold the room's
    own read of his standing once it has its answer. Returns the hold's release and the
    list that receives the attach's refusal, if any."""
    release = world.repo.hold_standing_read(1)
    live = await world.live()
    participant = await world.repo.get_participant(world.room.id, principal.user_id)
    assert participant is not None
    connection = Connection(socket, principal, ServerClock().now)
    refused: list[ServiceError] = []

    async def attach() -> None:
        try:
            await live.attach(connection, participant, world.room, [], None)
        except ServiceError as exc:
            refused.append(exc)

    world.nursery.start_soon(connection.run_writer)
    world.nursery.start_soon(attach)
    with trio.fail_after(5):
        await world.repo.read_held.wait()
    return release, refused


async def test_a_role_change_stored_while_a_join_reads_it_is_not_lost(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Ben is made a moderator while his join is on its way: he joins as one (not as the
    member the service's join read, which would keep him from controlling a moderators'
    room until he reconnects)."""
    ada = FakeSocket()
    await world.connect("Ada", ada)
    ben, ben_socket = await world.member("Ben"), FakeSocket()
    release, refused = await _attach_while_held(world, ben, ben_socket)
    await world.service.moderation.set_role(world.owner, world.room.id, ben.user_id, Role.MODERATOR)
    release.set()
    await trio.sleep(1)  # the arrival goes out in the next presence window
    assert refused == []
    [joined] = ben_socket.of_type("joined")
    assert joined["you"]["role"] == "moderator"
    [arrival] = [m for m in _presence(ada, "joined") if m["member"]["user_name"] == "Ben"]
    assert arrival["member"]["role"] == "moderator"


async def test_a_kick_that_lands_while_a_join_reads_the_standing_refuses_the_join(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """The service let Ben in, then a moderator kicked him before the room took him: he
    is not let in (a session of a non-member would stay until he left)."""
    ben, ben_socket = await world.member("Ben"), FakeSocket()
    release, refused = await _attach_while_held(world, ben, ben_socket)
    await world.service.moderation.kick(world.owner, world.room.id, ben.user_id)
    release.set()
    await trio.testing.wait_all_tasks_blocked()
    assert [exc.code for exc in refused] == ["not-a-member"]
    assert ben_socket.of_type("joined") == []
    assert world.supervisor.sessions_by_user(world.room.id)[ben.user_id] == 0


def _websocket_join(world: World, principal: Principal) -> FakeSocket:
    """Start ``principal``'s join of the room over a WebSocket (the daemon's handshake)."""
    settings = world.supervisor._deps.settings
    state = AppState(settings, world.repo, world.service, "x" * 32, supervisor=world.supervisor)
    socket = FakeSocket()
    handshake = Handshake(state, socket, None, vouched=principal)
    world.nursery.start_soon(handshake.run)
    socket.to_server.send_nowait(json.dumps({"type": "hello", "protocol": 1}))
    socket.to_server.send_nowait(json.dumps({"type": "join", "room_id": str(world.room.id)}))
    return socket


async def _websocket_join_racing(
    world: World,
    principal: Principal,
    moderate: Callable[[Principal, UUID, UUID], Awaitable[object]],
) -> FakeSocket:
    """``principal``'s WebSocket join, with the owner's ``moderate`` of them stored while the
    service's read of their standing (the join's first) is on its way; returns once the
    join has settled."""
    release = world.repo.hold_standing_read(1)
    socket = _websocket_join(world, principal)
    with trio.fail_after(5):
        await world.repo.read_held.wait()
    await moderate(world.owner, world.room.id, principal.user_id)
    release.set()
    await trio.testing.wait_all_tasks_blocked()
    return socket


async def test_a_ban_that_lands_during_a_websocket_join_is_refused_and_the_socket_stays(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """The service let Ben in; the ban lands before the room took him: ``error banned``,
    and the socket stays authenticated (it may join elsewhere), nothing crashes."""
    ben = await world.member("Ben")
    await world.live()  # live already: the ban reaches it
    # The ban reaching the room after the service's read began makes the room read again.
    socket = await _websocket_join_racing(world, ben, world.service.moderation.ban)
    assert world.repo.standing_reads == 2
    assert [m["type"] for m in socket.sent] == ["welcome", "error"]
    assert socket.sent[-1]["code"] == "banned"
    assert socket.close_code is None
    assert world.supervisor.sessions_by_user(world.room.id)[ben.user_id] == 0
    # Still authenticated: the next message is read and answered as before a join.
    await socket.to_server.send(json.dumps({"type": "ping", "id": 7, "t0": 0.0}))
    await trio.testing.wait_all_tasks_blocked()
    assert socket.sent[-1]["type"] == "pong"


async def test_a_websocket_join_of_a_live_room_reads_the_standing_once_per_step(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """The room takes the joiner by the standing the service read (nothing raced it): a
    member's join reads it once, a newcomer's twice (before and after storing the
    membership); only the join that starts the live room reads it again there."""
    ada = await world.member("Ada")
    first = _websocket_join(world, ada)
    await trio.testing.wait_all_tasks_blocked()
    assert len(first.of_type("joined")) == 1
    assert world.repo.standing_reads == 2  # the service's; the room's own, as it started
    ben = await world.member("Ben")
    member = _websocket_join(world, ben)
    await trio.testing.wait_all_tasks_blocked()
    assert len(member.of_type("joined")) == 1
    assert world.repo.standing_reads == 3
    newcomer = _websocket_join(world, Principal(uuid4(), "Cy"))
    await trio.testing.wait_all_tasks_blocked()
    [joined] = newcomer.of_type("joined")
    assert joined["you"]["user_name"] == "Cy"
    assert world.repo.standing_reads == 5


async def test_a_mute_that_lands_during_a_websocket_join_holds_from_the_first_frame(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Ben is muted while the service reads his standing (its answer: not muted). The mute
    reaches the live room before it takes him, so the room reads again: he joins muted,
    and everyone's list says so."""
    ada = FakeSocket()
    await world.connect("Ada", ada)
    ben = await world.member("Ben")
    socket = await _websocket_join_racing(world, ben, world.service.moderation.mute)
    [joined] = socket.of_type("joined")
    assert joined["you"]["muted"] is True
    await trio.sleep(1)  # the arrival goes out in the next presence window
    [arrival] = [m for m in _presence(ada, "joined") if m["member"]["user_name"] == "Ben"]
    assert arrival["member"]["muted"] is True


# -- watch sessions: the queue, the end of an item, next, readiness ------------------------


async def _heartbeat(socket: FakeSocket, position: float) -> None:
    """A heartbeat at the playback version the socket last heard."""
    frames = [m for m in socket.sent if m["type"] in ("joined", "playback", "sync")]
    playback = frames[-1]["playback"]
    await socket.to_server.send(json.dumps({
        "type": "heartbeat", "position": position, "version": playback["version"],
        "server_time": trio.current_time(),
    }))  # fmt: skip


async def test_the_queue_reaches_every_socket_and_a_new_item_starts_from_zero(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    first = world.room.current_item_id
    [joined] = ada.of_type("joined")
    assert joined["queue"]["current_item_id"] == str(first)
    assert joined["playback"]["item_id"] == str(first)
    queue = await world.service.queue.add(
        world.owner, world.room.id, content_type="movie", content_id="2", duration=50.0
    )
    second = queue.items[-1].id
    await ada.to_server.send(json.dumps({"type": "play"}))
    await trio.sleep(1)
    await ben.to_server.send(json.dumps({"type": "next", "current_item_id": str(first)}))
    await trio.sleep(1)
    for socket in (ada, ben):
        kinds = [m["type"] for m in socket.sent if m["type"] in ("queue", "playback")]
        assert kinds == ["queue", "playback", "queue", "playback"]  # the add, the play, next
        changed = socket.of_type("queue")[-1]["queue"]
        assert changed["current_item_id"] == str(second)
        item = socket.of_type("playback")[-1]
        assert item["reason"] == "item" and item["playback"]["item_id"] == str(second)
        assert item["playback"]["state"] == "playing" and item["playback"]["position"] == 0.0
        assert item["playback"]["duration"] == 50.0
    stored = await world.repo.get_room(world.room.id)
    assert stored is not None and stored.current_item_id == second


@pytest.mark.parametrize("gap", [0.0, 0.04, 0.099])
async def test_two_nexts_for_the_same_item_move_the_room_once(
    world: World, autojump_clock: trio.testing.MockClock, gap: float
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    first = str(world.room.current_item_id)
    for content in ("2", "3"):
        await world.service.queue.add(
            world.owner, world.room.id, content_type="movie", content_id=content
        )
    await trio.testing.wait_all_tasks_blocked()
    before = len(ada.of_type("queue"))
    # Both press Next at the end of an episode, within 100 ms (at once: both in flight).
    await ada.to_server.send(json.dumps({"type": "next", "current_item_id": first}))
    await trio.sleep(gap)
    await ben.to_server.send(json.dumps({"type": "next", "current_item_id": first}))
    await trio.sleep(1)
    for socket in (ada, ben):
        assert len(socket.of_type("queue")) == before + 1
        assert [m["reason"] for m in socket.of_type("playback")] == ["item"]
        assert socket.of_type("error") == []  # the late one changed nothing, and says nothing
    queue = await world.repo.get_queue(world.room.id)
    assert queue is not None and queue.current_id == queue.items[1].id
    events, _ = await world.repo.list_events(world.room.id, 50, 0)
    assert [e.payload["op"] for e in events if e.type == "queue"].count("next") == 1


async def test_at_the_end_everyone_reports_and_the_queue_moves_on(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    ben_connection = await world.connect("Ben", ben)
    first = world.room.current_item_id
    assert first is not None
    # Ben's player measured the item (and as a member of an "everyone" room he is trusted).
    await ben.to_server.send(json.dumps({"type": "media", "item_id": str(first), "duration": 20}))
    await trio.sleep(0.5)
    [timed] = ada.of_type("queue")
    assert timed["queue"]["items"][0]["duration"] == 20.0
    second = (
        (
            await world.service.queue.add(
                world.owner, world.room.id, content_type="movie", content_id="2"
            )
        )
        .items[-1]
        .id
    )
    await ada.to_server.send(json.dumps({"type": "play"}))
    for t in range(1, 25):  # heartbeats keep both sessions alive; they stay behind the room
        await trio.sleep(1)
        await _heartbeat(ada, min(t, 19.0))
    ended = ada.of_type("playback")[-1]
    assert ended["reason"] == "ended" and ended["playback"]["ended"] is True
    assert ended["playback"]["position"] == 20.0 and ended["playback"]["state"] == "paused"
    # Ada's heartbeat at the end counted; Ben's ``ended`` completes it: the queue moves on.
    await ben.to_server.send(json.dumps({"type": "ended", "item_id": str(first)}))
    await trio.sleep(1)
    assert [p["member"]["user_name"] for p in _presence(ada, "ended")] == ["Ben"]
    for socket in (ada, ben):
        assert socket.of_type("queue")[-1]["queue"]["current_item_id"] == str(second)
        item = socket.of_type("playback")[-1]
        assert item["reason"] == "item" and item["playback"]["state"] == "playing"
    events, _ = await world.repo.list_events(world.room.id, 100, 0)
    advances = [e for e in events if e.type == "queue" and e.payload["op"] == "advance"]
    assert len(advances) == 1 and advances[0].payload["by"] is None
    assert ben_connection.closing is None


async def test_the_end_waits_at_most_the_ready_timeout_and_names_who_did_not_finish(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    await world.service.queue.record_duration(world.room.id, world.room.current_item_id, 5.0)  # type: ignore[arg-type]
    await ada.to_server.send(json.dumps({"type": "play"}))
    await trio.sleep(6)
    await ada.to_server.send(
        json.dumps({"type": "ended", "item_id": str(world.room.current_item_id)})
    )
    for _ in range(35):  # nobody idles out meanwhile
        await trio.sleep(1)
        for socket in (ada, ben):
            await _heartbeat(socket, 0.0 if socket is ben else 5.0)
    [named] = _presence(ada, "not_ready_timeout")
    assert named["detail"] == "Ben"
    # Nothing follows the only item (repeat none): the room stays ended.
    assert ada.of_type("playback")[-1]["playback"]["ended"] is True


async def test_refusals_of_the_new_messages(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada = FakeSocket()
    await world.connect("Ada", ada)
    await ada.to_server.send(json.dumps({"type": "next", "current_item_id": "not-a-uuid"}))
    await ada.to_server.send(json.dumps({"type": "ended", "item_id": "x"}))
    await world.service.update_room(
        world.owner,
        world.room.id,
        RoomChanges(playback_control=PlaybackControl.MODERATORS, start_when_ready=True),
    )
    first = str(world.room.current_item_id)
    await ada.to_server.send(json.dumps({"type": "next", "current_item_id": first}))
    await trio.testing.wait_all_tasks_blocked()
    assert [e["code"] for e in ada.of_type("error")] == [
        "bad-message",
        "bad-message",
        "not-allowed",
    ]
    changed = ada.of_type("room")[-1]
    assert changed["settings"]["start_when_ready"] is True
    assert changed["room"]["start_when_ready"] is True


async def test_start_when_ready_through_the_live_room(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    await world.service.update_room(world.owner, world.room.id, RoomChanges(start_when_ready=True))
    await ben.to_server.send(json.dumps({"type": "play"}))
    await trio.testing.wait_all_tasks_blocked()
    refused = ben.of_type("error")[-1]
    assert refused["code"] == "not-ready" and "Ada" in refused["message"]
    for socket in (ada, ben):
        await socket.to_server.send(json.dumps({"type": "readiness", "ready": True}))
    await trio.testing.wait_all_tasks_blocked()
    assert [p["member"]["ready"] for p in _presence(ada, "readiness")] == [True, True]
    started = ada.of_type("playback")[-1]
    assert (started["reason"], started["playback"]["state"]) == ("all_ready", "playing")


async def test_a_slow_member_is_named_and_the_room_plays_on(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    await ada.to_server.send(json.dumps({"type": "play"}))
    await trio.sleep(1)
    for _ in range(3):  # three stalls: the room waits each time (the default policy)
        await ben.to_server.send(json.dumps({"type": "buffering"}))
        await trio.sleep(1)
        await ben.to_server.send(json.dumps({"type": "ready"}))
        await trio.sleep(2)
    waits = [m for m in ada.of_type("playback") if m["reason"] == "waiting"]
    assert len(waits) == 3
    await ben.to_server.send(json.dumps({"type": "buffering"}))
    await trio.sleep(1)
    assert ada.of_type("playback")[-1]["reason"] == "resume"  # no fourth wait
    for socket in (ada, ben):  # Ben is told too: his page says he is catching up
        [slow] = _presence(socket, "slow")
        assert slow["detail"] == "Ben" and slow["member"]["behind"] is True
    await ben.to_server.send(json.dumps({"type": "ready"}))
    await trio.testing.wait_all_tasks_blocked()
    assert ben.of_type("sync")[-1]["playback"]["state"] == "playing"


async def test_a_held_presence_never_overtakes_a_newer_one_about_the_same_user(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    # "joined" is held for the presence window, "ready" goes at once: were the held one
    # sent after it, its older entry (still behind) would be the member's last word.
    ada = FakeSocket()
    await world.connect("Ada", ada)
    await ada.to_server.send(json.dumps({"type": "play"}))
    await trio.sleep(1)
    ben = FakeSocket()
    await world.connect("Ben", ben)  # joins a playing room: a late joiner, behind
    await ben.to_server.send(json.dumps({"type": "buffering"}))
    await ben.to_server.send(json.dumps({"type": "ready"}))
    await trio.sleep(1)
    about_ben = [m for m in ada.of_type("presence") if m["member"]["user_name"] == "Ben"]
    assert [m["event"] for m in about_ben] == ["joined", "buffering", "ready"]
    assert about_ben[-1]["member"]["behind"] is False


async def test_arrivals_in_one_window_reach_each_member_as_one_batch(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    ada = FakeSocket()
    await world.connect("Ada", ada)
    await trio.sleep(1)
    seen = len(ada.sent)
    joiners = [FakeSocket() for _ in range(5)]
    for i, socket in enumerate(joiners):
        await world.connect(f"M{i}", socket)  # all within one presence window
    await trio.sleep(1)
    # Ada: one frame for the five arrivals, in order, each a whole presence message.
    [batch] = ada.sent[seen:]
    decoded = protocol.decode_server(json.dumps(batch))
    assert isinstance(decoded, protocol.PresenceBatch)
    assert [(e.event, e.member.user_name) for e in decoded.events] == [
        ("joined", f"M{i}") for i in range(5)
    ]
    # A joiner hears of the others, never of its own arrival (its ``joined`` said it);
    # a window with one arrival left for it is a plain ``presence``.
    for i, socket in enumerate(joiners):
        heard = [
            event["member"]["user_name"]
            for frame in socket.sent
            for event in (frame.get("events") or [frame])
            if event["type"] == "presence" and event["event"] == "joined"
        ]
        assert f"M{i}" not in heard
        assert set(heard) == {f"M{j}" for j in range(5)} - {f"M{i}"}
    assert joiners[3].sent[-1]["type"] == "presence_batch"


async def test_a_joiners_snapshot_shows_each_member_as_they_are_now(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    # The snapshot reuses each member's entry until their sessions change: a change
    # after one join must show in the next join's snapshot.
    ada, ben = FakeSocket(), FakeSocket()
    await world.connect("Ada", ada)
    await world.connect("Ben", ben)
    await trio.sleep(1)
    await ben.to_server.send(json.dumps({"type": "buffering"}))
    await trio.sleep(1)
    cy = FakeSocket()
    await world.connect("Cy", cy)
    members = {m["user_name"]: m for m in cy.of_type("joined")[0]["participants"]}
    assert members["Ben"]["buffering"] is True
    assert members["Ada"]["buffering"] is False
    await ben.to_server.send(json.dumps({"type": "ready"}))
    await trio.sleep(1)
    dee = FakeSocket()
    await world.connect("Dee", dee)
    members = {m["user_name"]: m for m in dee.of_type("joined")[0]["participants"]}
    assert members["Ben"]["buffering"] is False
    assert list(members) == ["Olga", "Ada", "Ben", "Cy", "Dee"][-len(members) :]


async def stored_connected(world: World, user: Principal) -> bool:
    """``is_connected`` as stored for ``user``, once the persister has written it behind."""
    await trio.sleep(2)
    participant = await world.repo.get_participant(world.room.id, user.user_id)
    assert participant is not None
    return participant.is_connected


async def test_a_member_stays_connected_until_their_last_socket_goes(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    live = await world.live()
    viewer = await world.member("viewer")
    phone = await world.connect("viewer", FakeSocket(), viewer)
    laptop = await world.connect("viewer", FakeSocket(), viewer)
    await world.connect("other", FakeSocket())
    assert await stored_connected(world, viewer)
    phone.close("idle-timeout", "the phone went quiet")  # as a dropped socket ends
    await trio.testing.wait_all_tasks_blocked()
    assert await stored_connected(world, viewer)  # the laptop is still there
    assert live._sockets_of[viewer.user_id] == 1
    laptop.close("idle-timeout", "the laptop went quiet")
    await trio.testing.wait_all_tasks_blocked()
    assert not await stored_connected(world, viewer)
    assert viewer.user_id not in live._sockets_of  # nothing kept for a user with none


async def test_a_resumed_session_counts_once_and_its_end_disconnects_the_member(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    live = await world.live()
    viewer = await world.member("viewer")
    first = await world.connect("viewer", FakeSocket(), viewer)
    participant = await world.repo.get_participant(world.room.id, viewer.user_id)
    assert participant is not None
    again = Connection(FakeSocket(), viewer, ServerClock().now)
    world.nursery.start_soon(again.run_writer)
    world.nursery.start_soon(live.attach, again, participant, world.room, [], first.session_id)
    await trio.testing.wait_all_tasks_blocked()
    assert first.closing is not None and first.closing[0] == "replaced"
    assert again.session_id == first.session_id
    assert live._sockets_of[viewer.user_id] == 1
    again.close("idle-timeout", "gone quiet")
    await trio.testing.wait_all_tasks_blocked()
    assert viewer.user_id not in live._sockets_of
    assert not await stored_connected(world, viewer)
