"""The write-behind persister: coalesces, batches, survives outages, stays bounded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
import trio
import trio.testing

from syncplayd.server.live import persister as persister_module
from syncplayd.server.live.persister import Persister
from syncplayd.storage import (
    MemoryRepository,
    NewEvent,
    NewRoom,
    Playback,
    PlaybackState,
    PresenceUpdate,
    Role,
)
from syncplayd.storage.errors import StorageError, StorageUnavailable

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FlakyRepository(MemoryRepository):
    """The verified in-memory repository, counting writes and failing on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.playback_writes = 0
        self.event_batches: list[int] = []
        self.presence_batches: list[int] = []
        self.poison: set[UUID] = set()

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        if self.down:
            raise StorageUnavailable("database is down")
        self.playback_writes += 1
        await super().update_playback(room_id, playback)

    async def log_events(self, events: Sequence[NewEvent]) -> None:
        if self.down:
            raise StorageUnavailable("database is down")
        self.event_batches.append(len(events))
        await super().log_events(events)

    async def record_presence(self, updates: Sequence[PresenceUpdate]) -> None:
        if self.down:
            raise StorageUnavailable("database is down")
        if any(update.user_id in self.poison for update in updates):
            raise StorageError("this change can never be written")
        self.presence_batches.append(len(updates))
        await super().record_presence(updates)


async def _room(repo: MemoryRepository) -> UUID:
    room = await repo.create_room(
        NewRoom(uuid4(), "r", uuid4(), "o", "movie", "1", True, None, 10, NOW)
    )
    return room.id


def _playback(version: int) -> Playback:
    return Playback(PlaybackState.PLAYING, float(version), 1.0, version, NOW, None)


async def test_coalesces_playback_and_batches_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    repo = FlakyRepository()
    room_id = await _room(repo)
    writer = Persister(repo, flush_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for version in range(1, 101):  # a burst of changes...
            writer.playback(room_id, _playback(version))
            writer.event(NewEvent(room_id, "playback", NOW, payload={"v": version}))
        writer.playback(room_id, _playback(50))  # ...and a stale one arriving late
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    assert repo.playback_writes == 1  # ...is one write of the newest state
    stored = await repo.get_room(room_id)
    assert stored is not None and stored.playback.version == 100
    assert sum(repo.event_batches) == 100 and len(repo.event_batches) == 1
    events, total = await repo.list_events(room_id, 200, 0)
    assert total == 100 and events[0].payload == {"v": 100}


async def test_an_outage_delays_writes_and_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    repo = FlakyRepository()
    room_id = await _room(repo)
    writer = Persister(repo, flush_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        repo.down = True
        writer.playback(room_id, _playback(7))
        for i in range(10):
            writer.event(NewEvent(room_id, "joined", NOW, payload={"i": i}))
        await trio.sleep(10)
        assert writer.pending == 11 and writer.failures > 0
        repo.down = False
        await trio.sleep(10)  # the retry backoff is capped at a few seconds
        assert writer.pending == 0
        nursery.cancel_scope.cancel()
    stored = await repo.get_room(room_id)
    assert stored is not None and stored.playback.version == 7
    assert (await repo.list_events(room_id, 50, 0))[1] == 10


async def test_pending_events_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(persister_module, "MAX_PENDING_EVENTS", 5)
    writer = Persister(MemoryRepository())
    room_id = uuid4()
    for i in range(12):
        writer.event(NewEvent(room_id, "joined", NOW, payload={"i": i}))
    assert writer.pending == 5 and writer.dropped_events == 7


async def test_shutdown_flushes_what_is_pending(autojump_clock: trio.testing.MockClock) -> None:
    repo = FlakyRepository()
    room_id = await _room(repo)
    writer = Persister(repo, flush_interval=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.playback(room_id, _playback(3))
        nursery.cancel_scope.cancel()  # long before the flush interval
    stored = await repo.get_room(room_id)
    assert stored is not None and stored.playback.version == 3


async def test_a_crowd_s_presence_is_written_in_a_few_batches_after_an_outage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    repo = FlakyRepository()
    room = await repo.create_room(
        NewRoom(uuid4(), "party", uuid4(), "o", "movie", "1", True, None, 2_000, NOW)
    )
    room_id = room.id
    users = [uuid4() for _ in range(1_200)]
    for user in users:
        await repo.add_participant(room_id, user, "Member", Role.MEMBER, NOW)
    writer = Persister(repo, flush_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        repo.down = True
        for user in users:  # a watch party arriving while the database is away
            writer.presence(room_id, user, True, NOW)
        writer.presence(room_id, users[0], False, NOW)  # and the first one gone again
        await trio.sleep(10)
        assert writer.pending == 1_200 and repo.presence_batches == []
        repo.down = False
        await trio.sleep(10)
        assert writer.pending == 0
        nursery.cancel_scope.cancel()
    # One write per 500 members, not one per member.
    assert repo.presence_batches == [500, 500, 200]
    connected = await repo.list_participants(room_id, connected_only=True)
    assert {m.user_id for m in connected} == set(users[1:])


async def test_a_presence_change_that_can_never_be_written_is_dropped_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    repo = FlakyRepository()
    room_id = await _room(repo)
    users = [uuid4() for _ in range(5)]
    for user in users:
        await repo.add_participant(room_id, user, "Member", Role.MEMBER, NOW)
    repo.poison = {users[2]}
    writer = Persister(repo, flush_interval=0.5)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for user in users:
            writer.presence(room_id, user, True, NOW)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert writer.pending == 0 and writer.dropped_presence == 1
    connected = await repo.list_participants(room_id, connected_only=True)
    assert {m.user_id for m in connected} == set(users) - {users[2]}
