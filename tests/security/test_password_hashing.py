"""Room-password hashing is bounded: one limiter for hashes and checks, a small argon2 cost,
per-user rates for creates and password changes, and no hashing for creates past the quota.

The service runs over the in-memory repository with an instrumented :class:`Passwords` (real
argon2 at a small cost, plus a pause so that unbounded runs would overlap); no daemon.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import argon2
import pytest
import trio

from syncplayd.config import SyncplaySettings, load_settings
from syncplayd.identity import Principal
from syncplayd.passwords import HashCost, Passwords
from syncplayd.service import RoomService, ServiceError
from syncplayd.service.rooms import RoomChanges
from syncplayd.storage import NewRoom
from syncplayd.storage.memory import MemoryRepository
from tests.security.support import service_room

#: How long each instrumented hash or check holds its worker thread.
HOLD = 0.03


class CountingPasswords(Passwords):
    """Counts every argon2 run by kind, and the most that ran at once."""

    def __init__(self, concurrency: int = 2) -> None:
        super().__init__(HashCost(memory_kib=1024, time_cost=1, parallelism=1), concurrency)
        self.calls: Counter[str] = Counter()
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def _run(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] += 1
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(HOLD)

    def _done(self) -> None:
        with self._lock:
            self.running -= 1

    def hash_sync(self, password: str) -> str:
        self._run("hash")
        try:
            return super().hash_sync(password)
        finally:
            self._done()

    def verify_sync(self, password_hash: str, password: str) -> bool:
        self._run("verify")
        try:
            return super().verify_sync(password_hash, password)
        finally:
            self._done()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(tmp_path: Path, **env: str) -> SyncplaySettings:
    return load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)} | env).syncplay


def _user(name: str = "user", *, admin: bool = False) -> Principal:
    return Principal(user_id=uuid4(), name=name, is_admin=admin)


async def test_concurrent_creates_at_the_quota_hash_only_for_free_places(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER="3")
    passwords = CountingPasswords(concurrency=8)
    service = RoomService(MemoryRepository(), settings, passwords=passwords)
    owner = _user("racer")
    await service_room(service, owner)  # one of three places taken
    outcomes: list[str] = []

    async def create() -> None:
        try:
            await service_room(service, owner, password="secret")
            outcomes.append("created")
        except ServiceError as error:
            outcomes.append(error.code)

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(create)
    assert sorted(outcomes) == ["created"] * 2 + ["too-many-rooms"] * 10
    # A create refused for the quota never hashed: (quota - owned) passwords, each hashed
    # twice (the password, and the verifier Syncplay clients are checked against).
    assert passwords.calls["hash"] == 2 * 2


async def test_one_limiter_bounds_hashes_and_checks_together(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    passwords = CountingPasswords(concurrency=2)
    service = RoomService(MemoryRepository(), settings, passwords=passwords)
    owners = [_user(f"owner{i}") for i in range(8)]
    rooms = [await service_room(service, owner, password="right") for owner in owners]
    passwords.calls.clear()
    passwords.most = 0

    async def update(owner: Principal, room_id: UUID) -> None:
        await service.update_room(owner, room_id, RoomChanges(password="right"))

    async def join(room_id: UUID) -> None:
        await service.join(_user("guest"), room_id, password="right")

    async with trio.open_nursery() as nursery:
        for owner, room_id in zip(owners, rooms, strict=True):
            for _ in range(2):
                nursery.start_soon(update, owner, room_id)
                nursery.start_soon(join, room_id)
    assert passwords.calls == {"hash": 2 * 16, "verify": 16}  # two hashes per password set
    assert passwords.most == 2  # 48 argon2 runs asked for at once, two at a time


async def test_a_reload_changes_the_bound(tmp_path: Path) -> None:
    passwords = Passwords(HashCost(), concurrency=2)
    service = RoomService(MemoryRepository(), _settings(tmp_path), passwords=passwords)
    service.reconfigure(_settings(tmp_path, SYNCPLAY_ROOMS_PASSWORD_HASH_CONCURRENCY="5"))
    assert passwords.limiter.total_tokens == 5


async def test_password_changes_are_rate_limited_per_user(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SYNCPLAY_ROOMS_PASSWORD_CHANGES_PER_HOUR="5")
    clock = FakeClock()
    passwords = CountingPasswords()
    service = RoomService(MemoryRepository(), settings, monotonic=clock, passwords=passwords)
    owner = _user("owner")
    room_id = await service_room(service, owner)
    for _ in range(5):
        await service.update_room(owner, room_id, RoomChanges(password="pw"))
    with pytest.raises(ServiceError) as info:
        await service.update_room(owner, room_id, RoomChanges(password="pw"))
    assert (info.value.status, info.value.code) == (429, "rate-limited")
    retry = info.value.retry_after
    assert retry is not None and 720 <= retry <= 721  # one change every 3600/5 s, rounded up
    assert passwords.calls["hash"] == 2 * 5  # the refused change hashed nothing
    # Other changes, and other users, are not limited by this budget.
    await service.update_room(owner, room_id, RoomChanges(name="renamed", clear_password=True))
    other = _user("other")
    await service.update_room(other, await service_room(service, other), RoomChanges(password="pw"))
    admin = _user("admin", admin=True)
    for _ in range(8):
        await service.update_room(admin, room_id, RoomChanges(password="pw"))
    clock.now += retry
    await service.update_room(owner, room_id, RoomChanges(password="pw"))


async def test_room_creates_are_rate_limited_per_user(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, SYNCPLAY_ROOMS_CREATES_PER_HOUR="3", SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER="100"
    )
    clock = FakeClock()
    passwords = CountingPasswords()
    service = RoomService(MemoryRepository(), settings, monotonic=clock, passwords=passwords)
    owner = _user("owner")
    for _ in range(3):
        await service_room(service, owner, password="pw")
    with pytest.raises(ServiceError) as info:
        await service_room(service, owner, password="pw")
    assert (info.value.status, info.value.code, info.value.retry_after) == (
        429,
        "rate-limited",
        1200,
    )
    assert passwords.calls["hash"] == 2 * 3
    clock.now += 1200
    await service_room(service, owner)


async def test_hashes_made_with_other_parameters_still_verify(tmp_path: Path) -> None:
    # What earlier versions stored: argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes).
    legacy = argon2.PasswordHasher(memory_cost=65536, time_cost=3, parallelism=4).hash("sesame")
    assert legacy.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    passwords = Passwords()
    assert await passwords.verify(legacy, "sesame")
    assert not await passwords.verify(legacy, "sesame!")
    assert not await passwords.verify("not a hash", "sesame")
    assert (await passwords.hash("sesame")).startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    # A room stored with such a hash is joined with its password, as before.
    repo = MemoryRepository()
    service = RoomService(repo, _settings(tmp_path))
    room = await repo.create_room(
        NewRoom(uuid4(), "Old", uuid4(), "o", "movie", "1", True, legacy, 10, datetime.now(UTC))
    )
    with pytest.raises(ServiceError) as info:
        await service.join(_user(), room.id, password="wrong")
    assert info.value.code == "wrong-password"
    _, participant = await service.join(_user("guest"), room.id, password="sesame")
    assert participant.user_name == "guest"


async def test_new_hashes_take_the_configured_cost(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path,
        SYNCPLAY_ROOMS_PASSWORD_HASH_MEMORY_KIB="8192",
        SYNCPLAY_ROOMS_PASSWORD_HASH_TIME_COST="1",
        SYNCPLAY_ROOMS_PASSWORD_HASH_PARALLELISM="2",
    )
    repo = MemoryRepository()
    service = RoomService(repo, settings)
    room = await repo.get_room(await service_room(service, _user(), password="pw"))
    assert room is not None and room.password_hash is not None
    assert room.password_hash.startswith("$argon2id$v=19$m=8192,t=1,p=2$")
