"""Maintenance sweeps with a controllable clock: idle rooms end, old invitations go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from syncplayd.config import load_settings
from syncplayd.server.process.maintenance import Maintenance
from syncplayd.storage import Invitation, MemoryRepository, NewRoom

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _new_room(created: datetime) -> NewRoom:
    return NewRoom(uuid4(), "r", uuid4(), "o", "movie", "1", True, None, 10, created)


async def test_idle_rooms_end_and_expired_invitations_are_purged(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "SYNCPLAY_STATE_DIR": str(tmp_path),
            "SYNCPLAY_MAX_ROOM_AGE_HOURS": "24",
            "SYNCPLAY_CLEANUP_INACTIVE_ROOMS_HOURS": "12",
            "SYNCPLAY_CLEANUP_EXPIRED_INVITATIONS_HOURS": "48",
        },
    ).syncplay
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
