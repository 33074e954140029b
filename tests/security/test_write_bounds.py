"""What one user can make the database keep is bounded: rates for room and invitation creates, a
cap on live invitations per room, and retention of ended rooms and events.

The flood runs against the service and the maintenance sweep on every backend, with a clock
moved by hand through simulated days; the refusals are also checked end to end against a
daemon (answers checked against the OpenAPI contract).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.server.process.maintenance import Maintenance
from syncplayd.service import RoomService, ServiceError
from syncplayd.storage import NewEvent, Repository, RoomFilters
from tests.daemon_process import DaemonProcess, new_user
from tests.security.support import Http, service_room
from tests.server.conftest import BACKENDS, backend_daemon

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOURS = 72

ROOMS_PER_HOUR = 4
INVITES_PER_HOUR = 10
LIVE_INVITES = 5
EVENTS_KEPT = 100

FLOOD_ENV = {
    "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": "3",
    "SYNCPLAY_ROOMS_CREATES_PER_HOUR": str(ROOMS_PER_HOUR),
    "SYNCPLAY_INVITATIONS_CREATES_PER_HOUR": str(INVITES_PER_HOUR),
    "SYNCPLAY_INVITATIONS_MAX_LIVE_PER_ROOM": str(LIVE_INVITES),
    "SYNCPLAY_INVITATIONS_EXPIRY_HOURS": "720",
    "SYNCPLAY_CLEANUP_ENDED_ROOMS_DAYS": "1",
    "SYNCPLAY_CLEANUP_EVENTS_DAYS": "1",
    "SYNCPLAY_CLEANUP_MAX_EVENTS_PER_ROOM": str(EVENTS_KEPT),
}


class Clock:
    """One simulated time for the wall clock and the monotonic clock."""

    def __init__(self) -> None:
        self.now = START

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - START).total_seconds()


async def _count_rooms(repo: Repository) -> int:
    return (await repo.list_rooms(RoomFilters(), 0, 0))[1]


async def test_one_users_flood_levels_off(repo: Repository, tmp_path: Path) -> None:
    settings = load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)} | FLOOD_ENV).syncplay
    clock = Clock()
    service = RoomService(repo, settings, wall_clock=clock.wall, monotonic=clock.monotonic)
    maintenance = Maintenance(
        repo, settings, is_busy=lambda _: True, room_ended=lambda _: None, wall_clock=clock.wall
    )
    attacker = Principal(user_id=uuid4(), name="flood", is_admin=False)
    home = await service_room(service, attacker)
    rooms_created = invites_created = 0
    rooms_per_hour: list[int] = []
    refusals: set[str] = set()
    stored_rooms: list[int] = []
    stored_events: list[int] = []

    for _ in range(HOURS):
        created = 0
        for _ in range(10):  # as fast as it may: create a room and end it
            try:
                room_id = await service_room(service, attacker, public=False)
            except ServiceError as error:
                refusals.add(error.code)
                continue
            created += 1
            await service.end_room(attacker, room_id)
        rooms_per_hour.append(created)
        rooms_created += created
        for _ in range(15):  # invitations to the one room that stays
            try:
                await service.create_invitation(attacker, home, expires_in_hours=720)
                invites_created += 1
            except ServiceError as error:
                refusals.add(error.code)
        # Playback changes of a busy room, logged as the live room's persister does.
        await repo.log_events([NewEvent(home, "seek", clock.now, attacker.user_id)] * 60)
        clock.now += timedelta(hours=1)
        await maintenance.sweep()
        stored_rooms.append(await _count_rooms(repo))
        stored_events.append((await repo.list_events(home, 0, 0))[1])

    assert refusals == {"rate-limited", "too-many-invitations"}
    # The rates: a burst (the first room took one), then the hourly budget, whatever the
    # attacker tries.
    assert rooms_per_hour[0] == ROOMS_PER_HOUR - 1
    assert max(rooms_per_hour[1:]) == ROOMS_PER_HOUR
    assert rooms_created <= ROOMS_PER_HOUR * (HOURS + 1)
    # Invitations: the room never holds more than the cap of live ones, so after the first
    # hour nothing more is stored, although the attacker keeps asking.
    assert invites_created == LIVE_INVITES
    # Retention: rooms ended a day ago are gone, and so are events beyond the room's cap.
    day = 24
    assert max(stored_rooms[day + 1 :]) <= ROOMS_PER_HOUR * (day + 1) + 1
    assert stored_rooms[-1] == stored_rooms[-day]  # levelled off: as many go as come
    assert max(stored_events) <= EVENTS_KEPT
    assert await repo.get_room(home) is not None  # the live room and its newest events stay
    assert (await repo.list_events(home, 0, 0))[1] == EVENTS_KEPT


# -- end to end: the refusals over HTTP -----------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def bounded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    env = {
        "SYNCPLAY_ROOMS_CREATES_PER_HOUR": "4",
        "SYNCPLAY_ROOMS_PASSWORD_CHANGES_PER_HOUR": "3",
        "SYNCPLAY_INVITATIONS_CREATES_PER_HOUR": "5",
        "SYNCPLAY_INVITATIONS_MAX_LIVE_PER_ROOM": "3",
    }
    with backend_daemon(request, tmp_path_factory, "bounds", env) as process:
        yield process


def _retry_after(response: httpx.Response, interval: float) -> None:
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= math.ceil(interval) + 1, retry


def test_room_creates_are_rate_limited(bounded: DaemonProcess) -> None:
    owner = Http(bounded, new_user("churner"))
    for _ in range(4):
        room_id = owner.room()["id"]
        owner.expect("DELETE", "/rooms/{room_id}", 204, room_id=room_id)
    body = {"name": "one more", "content_type": "movie", "content_id": "1"}
    refused = owner.expect("POST", "/rooms", 429, "rate-limited", json=body)
    _retry_after(refused, 3600 / 4)
    Http(bounded, new_user("someone else")).room()  # a budget per user


def test_password_changes_are_rate_limited(bounded: DaemonProcess) -> None:
    owner = Http(bounded, new_user("changer"))
    room_id = owner.room()["id"]
    for n in range(3):
        owner.expect("PUT", "/rooms/{room_id}", 200, json={"password": f"p{n}"}, room_id=room_id)
    refused = owner.expect(
        "PUT", "/rooms/{room_id}", 429, "rate-limited", json={"password": "p"}, room_id=room_id
    )
    _retry_after(refused, 3600 / 3)
    # Not counted: other settings, removing the password; administrators are not limited.
    owner.expect("PUT", "/rooms/{room_id}", 200, json={"password": None}, room_id=room_id)
    admin = Http(bounded, new_user("operator", admin=True))
    for n in range(5):
        admin.expect("PUT", "/rooms/{room_id}", 200, json={"password": f"a{n}"}, room_id=room_id)
    # The last password set is the one that opens the room.
    guest = Http(bounded, new_user("guest"))
    join = "/rooms/{room_id}/join"
    guest.expect("POST", join, 403, "wrong-password", json={"password": "p2"}, room_id=room_id)
    guest.expect("POST", join, 200, json={"password": "a4"}, room_id=room_id)


def test_live_invitations_are_capped_and_creates_rate_limited(bounded: DaemonProcess) -> None:
    owner = Http(bounded, new_user("inviter"))
    room_id = owner.room()["id"]
    invitations = "/rooms/{room_id}/invitations"
    for _ in range(3):
        owner.invite(room_id)
    for _ in range(2):
        owner.expect("POST", invitations, 409, "too-many-invitations", json={}, room_id=room_id)
    refused = owner.expect("POST", invitations, 429, "rate-limited", json={}, room_id=room_id)
    _retry_after(refused, 3600 / 5)
    # The rate is per user and spares administrators; the cap is the room's, for everyone.
    admin = Http(bounded, new_user("operator", admin=True))
    admin.expect("POST", invitations, 409, "too-many-invitations", json={}, room_id=room_id)
