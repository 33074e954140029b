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
from syncplayd.storage import MemoryRepository, NewEvent, NewRoom, Playback, PlaybackState
from syncplayd.storage.errors import StorageUnavailable

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class FlakyRepository(MemoryRepository):
    """The verified in-memory repository, counting writes and failing on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.playback_writes = 0
        self.event_batches: list[int] = []

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
