"""The per-user and per-address budgets of the service, on a fake clock (no daemon)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.service import RoomService, ServiceError
from syncplayd.service.attempts import SecretAttempts, address_key
from syncplayd.storage.memory import MemoryRepository


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # same /64, same budget
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, None),
        ("", None),
        ("unix-socket", None),
    ],
)
def test_address_keys(address: str | None, key: str | None) -> None:
    assert address_key(address) == key


def _refusal(attempts: SecretAttempts, user: UUID, address: str | None) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        attempts.charge(user, address)
    error = info.value
    assert (error.status, error.code) == (429, "too-many-attempts")
    assert error.retry_after is not None
    return error


def test_per_user_and_per_address_budgets() -> None:
    clock = FakeClock()
    attempts = SecretAttempts(per_user=2, per_address=3, window_seconds=60, monotonic=clock)
    alice, bob, carol = uuid4(), uuid4(), uuid4()
    attempts.charge(alice, "198.51.100.1")
    clock.now += 10
    attempts.charge(alice, "198.51.100.2")
    # Alice is out, wherever she comes from; the wait is her window's remaining 50 s.
    assert _refusal(attempts, alice, "198.51.100.9").retry_after == 50
    attempts.charge(bob, "198.51.100.1")
    attempts.charge(carol, "198.51.100.1")  # the address's third
    # A fresh user at that address is refused by the address budget.
    assert _refusal(attempts, uuid4(), "198.51.100.1").retry_after == 50
    attempts.charge(uuid4(), "198.51.100.3")
    clock.now += 50
    attempts.charge(alice, "198.51.100.1")  # both windows are over
    attempts.charge(alice, "198.51.100.1")
    assert _refusal(attempts, alice, "198.51.100.4").retry_after == 60


def test_the_address_budget_can_be_switched_off() -> None:
    attempts = SecretAttempts(per_user=1, per_address=0, window_seconds=60, monotonic=FakeClock())
    for _ in range(100):
        attempts.charge(uuid4(), "192.0.2.1")
    assert attempts.tracked == (100, 0)


async def test_only_a_refused_secret_stays_counted() -> None:
    attempts = SecretAttempts(per_user=1, per_address=5, window_seconds=60, monotonic=FakeClock())
    user = uuid4()
    async with attempts.attempt(user, "192.0.2.1"):
        pass  # the right secret
    with pytest.raises(OSError, match="database"):
        async with attempts.attempt(user, "192.0.2.1"):
            raise OSError("database unreachable")  # our failure, not the guess's
    with pytest.raises(ServiceError):
        async with attempts.attempt(user, "192.0.2.1"):
            raise ServiceError(403, "wrong-password", "wrong")
    _refusal(attempts, user, "192.0.2.2")


def test_tables_are_bounded() -> None:
    attempts = SecretAttempts(
        per_user=3, per_address=3, window_seconds=60, monotonic=FakeClock(), max_tracked=50
    )
    for n in range(5000):
        attempts.charge(uuid4(), f"10.0.{n // 250}.{n % 250}")
    assert attempts.tracked == (50, 50)


async def test_the_service_window_expires(tmp_path: Path) -> None:
    env = {
        "SYNCPLAY_STATE_DIR": str(tmp_path),
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": "2",
        "SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS": "60",
    }
    clock = FakeClock()
    service = RoomService(MemoryRepository(), load_settings(None, env).syncplay, monotonic=clock)
    owner, guest = Principal(uuid4(), "owner"), Principal(uuid4(), "guest")
    room = await service.create_room(
        owner, name="r", content_type="movie", content_id="1", is_public=True,
        password="right", max_participants=None,
    )  # fmt: skip

    async def join(password: str) -> str:
        try:
            await service.join(guest, room.id, password=password, address="192.0.2.1")
        except ServiceError as error:
            return f"{error.status} {error.code} {error.retry_after}"
        return "joined"

    assert await join("a") == "403 wrong-password None"
    clock.now += 15
    assert await join("b") == "403 wrong-password None"
    assert await join("right") == "429 too-many-attempts 45"
    clock.now += 44.5
    assert await join("right") == "429 too-many-attempts 1"  # rounded up, never 0
    clock.now += 0.5
    assert await join("right") == "joined"
