"""Maintenance sweeps with a controllable clock: idle rooms end; old invitations, ended rooms and
events go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from syncplayd.config import SyncplaySettings, load_settings
from syncplayd.server.process.maintenance import BATCH, Maintenance
from syncplayd.storage import AttemptBudget, Invitation, MemoryRepository, NewEvent, NewRoom
from syncplayd.storage.records import Restriction, RestrictionKind

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _settings(tmp_path: Path, **env: str) -> SyncplaySettings:
    return load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)} | env).syncplay


def _new_room(created: datetime) -> NewRoom:
    return NewRoom(uuid4(), "r", uuid4(), "o", "movie", "1", True, None, 10, created)


async def test_idle_rooms_end_and_expired_invitations_are_purged(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        SYNCPLAY_MAX_ROOM_AGE_HOURS="24",
        SYNCPLAY_CLEANUP_INACTIVE_ROOMS_HOURS="12",
        SYNCPLAY_CLEANUP_EXPIRED_INVITATIONS_HOURS="48",
    )
    repo = MemoryRepository()
    clock = Clock()
    busy: set[UUID] = set()
    told: list[UUID] = []
    maintenance = Maintenance(
        repo, settings, is_busy=busy.__contains__, room_ended=told.append, wall_clock=clock
    )
    quiet = await repo.create_room(_new_room(START))
    occupied = await repo.create_room(_new_room(START))
    busy.add(occupied.id)
    fresh = await repo.create_room(_new_room(START + timedelta(hours=11)))
    invitation = await repo.create_invitation(
        Invitation(
            uuid4(), "ABCDEFGH", quiet.id, uuid4(), None, START + timedelta(hours=1), None, 0, START
        )
    )

    clock.now = START + timedelta(hours=11, minutes=59)
    assert (await maintenance.sweep()).ended_rooms == []  # not idle for 12 h yet

    clock.now = START + timedelta(hours=12, minutes=1)
    sweep = await maintenance.sweep()
    assert sweep.ended_rooms == [quiet.id]  # the occupied one is in use, the fresh one is young
    assert told == [quiet.id]
    ended = await repo.get_room(quiet.id)
    assert ended is not None and ended.ended_at == clock.now
    assert (await repo.get_room(occupied.id)).ended_at is None  # type: ignore[union-attr]
    assert (await repo.get_room(fresh.id)).ended_at is None  # type: ignore[union-attr]
    assert sweep.purged_invitations == 0  # expired 11 h ago: kept for 48 h

    clock.now = START + timedelta(hours=49, minutes=1)
    sweep = await maintenance.sweep()
    assert sweep.purged_invitations == 1
    assert await repo.get_invitation(invitation.code) is None
    assert fresh.id in sweep.ended_rooms and occupied.id not in sweep.ended_rooms


async def test_ended_rooms_and_old_events_are_purged(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        SYNCPLAY_CLEANUP_ENDED_ROOMS_DAYS="7",
        SYNCPLAY_CLEANUP_EVENTS_DAYS="3",
        SYNCPLAY_CLEANUP_MAX_EVENTS_PER_ROOM="100",
    )
    repo = MemoryRepository()
    clock = Clock()
    maintenance = Maintenance(
        repo, settings, is_busy=lambda _: True, room_ended=lambda _: None, wall_clock=clock
    )
    ended = [await repo.create_room(_new_room(START)) for _ in range(BATCH + 2)]
    for room in ended:
        await repo.end_room(room.id, START)
    live = await repo.create_room(_new_room(START))
    await repo.log_events([NewEvent(live.id, "seek", START)] * 150)
    await repo.log_events([NewEvent(live.id, "play", START + timedelta(days=2))] * 50)

    clock.now = START + timedelta(days=2, hours=1)
    sweep = await maintenance.sweep()
    assert (sweep.purged_rooms, sweep.purged_events) == (0, 100)  # the oldest beyond 100
    assert (await repo.list_events(live.id, 0, 0))[1] == 100

    clock.now = START + timedelta(days=3, hours=1)
    sweep = await maintenance.sweep()
    assert (sweep.purged_rooms, sweep.purged_events) == (0, 50)  # older than 3 days
    assert (await repo.list_events(live.id, 0, 0))[1] == 50

    clock.now = START + timedelta(days=7, hours=1)
    sweep = await maintenance.sweep()
    assert sweep.purged_rooms == BATCH + 2  # in batches, all in one sweep
    assert all([await repo.get_room(room.id) is None for room in ended])
    assert await repo.get_room(live.id) is not None


async def test_expired_bans_and_mutes_are_purged(tmp_path: Path) -> None:
    repo = MemoryRepository()
    clock = Clock()
    maintenance = Maintenance(
        repo,
        _settings(tmp_path),
        is_busy=lambda _: False,
        room_ended=lambda _: None,
        wall_clock=clock,
    )
    room = await repo.create_room(_new_room(START))
    lasting, brief = uuid4(), uuid4()
    for user, expires in ((lasting, None), (brief, START + timedelta(minutes=30))):
        await repo.set_restriction(
            Restriction(room.id, user, RestrictionKind.BAN, None, None, uuid4(), START, expires)
        )

    clock.now = START + timedelta(minutes=29)
    assert (await maintenance.sweep()).purged_restrictions == 0  # still in force

    clock.now = START + timedelta(minutes=31)
    assert (await maintenance.sweep()).purged_restrictions == 1
    assert await repo.get_restriction(room.id, brief, RestrictionKind.BAN) is None
    assert await repo.get_restriction(room.id, lasting, RestrictionKind.BAN) is not None


async def test_failed_attempt_windows_are_purged_a_day_after_they_opened(tmp_path: Path) -> None:
    """The windows several nodes count in the database (``SharedAttempts``); the longest
    window allowed is a day, so an open one is never deleted."""
    repo = MemoryRepository()
    clock = Clock()
    maintenance = Maintenance(
        repo,
        _settings(tmp_path, SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS="86400"),
        is_busy=lambda _: False,
        room_ended=lambda _: None,
        wall_clock=clock,
    )
    old, recent = AttemptBudget("user", "old", 1), AttemptBudget("user", "recent", 1)
    assert await repo.charge_attempts([old], START, 86400) == 0.0
    assert await repo.charge_attempts([recent], START + timedelta(hours=2), 86400) == 0.0

    clock.now = START + timedelta(hours=23, minutes=59)
    assert (await maintenance.sweep()).purged_attempt_windows == 0  # both still open

    clock.now = START + timedelta(days=1, minutes=1)
    assert (await maintenance.sweep()).purged_attempt_windows == 1
    # The recent window still counts: its budget of 1 is spent...
    assert await repo.charge_attempts([recent], clock.now, 86400) > 0
    # ...and the old one starts over.
    assert await repo.charge_attempts([old], clock.now, 86400) == 0.0
