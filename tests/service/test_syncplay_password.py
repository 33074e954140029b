"""Joining a password room as a Syncplay desktop client: with the MD5 hex of the password.

Syncplay clients never send the password itself, only ``md5(password).hexdigest()``. The
service keeps a second verifier for them (an argon2id hash of that MD5, set and cleared
with the password) and checks it under the same failed-attempt budget as the password.
The world is the in-memory repository and real argon2 at a small cost; the budget's
clock is moved by hand (it never needs to move here: nothing waits out a window).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from syncplayd.config import load_settings
from syncplayd.core.roles import Role
from syncplayd.identity import Principal
from syncplayd.passwords import HashCost, Passwords
from syncplayd.service import RoomChanges, RoomService, ServiceError
from syncplayd.service.rooms import syncplay_password_md5
from syncplayd.storage import MemoryRepository, NewRoom
from syncplayd.storage.records import Room
from tests.storage.factories import T0

#: Wrong guesses per user before joins with a secret are refused outright.
BUDGET = 3
PASSWORD = "correct horse"
MD5 = syncplay_password_md5(PASSWORD)
WRONG_MD5 = syncplay_password_md5("incorrect horse")

WRONG = (403, "wrong-password", "wrong or missing room password")
OUT_OF_GUESSES = (429, "too-many-attempts")
NO_VERIFIER = (
    403,
    "wrong-password",
    "this room's password was set before desktop (Syncplay) clients were supported; "
    "its owner must set the password again before they can join with it",
)


@dataclass
class World:
    service: RoomService
    repo: MemoryRepository
    passwords: Passwords
    owner: Principal

    async def password_room(self, password: str | None = PASSWORD, *, public: bool = True) -> UUID:
        room = await self.service.create_room(
            self.owner, name="Film club", content_type="movie", content_id="m-1",
            is_public=public, password=password, max_participants=None,
        )  # fmt: skip
        return room.id

    async def room(self, room_id: UUID) -> Room:
        room = await self.repo.get_room(room_id)
        assert room is not None
        return room


@pytest.fixture
def world(tmp_path: Path) -> World:
    env = {
        "SYNCPLAY_STATE_DIR": str(tmp_path),
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": str(BUDGET),
    }
    settings = load_settings(None, env).syncplay
    repo = MemoryRepository()
    # Real argon2id, cheap enough that a test can make a few dozen.
    passwords = Passwords(HashCost(memory_kib=1024, time_cost=1, parallelism=1))
    service = RoomService(repo, settings, passwords=passwords, monotonic=lambda: 1000.0)
    return World(service, repo, passwords, Principal(uuid4(), "Olive"))


def guest(name: str = "Gus") -> Principal:
    return Principal(uuid4(), name)


async def refusal(call: Awaitable[object]) -> tuple[int, str, str]:
    with pytest.raises(ServiceError) as refused:
        await call
    return refused.value.status, refused.value.code, refused.value.detail


def test_the_md5_is_the_one_syncplay_clients_send() -> None:
    # Syncplay's client: hashlib.md5(password.encode("utf-8")).hexdigest().
    assert syncplay_password_md5("password") == "5f4dcc3b5aa765d61d8327deb882cf99"
    assert syncplay_password_md5("pässwörd") == "12841e4ba5e37d2fbfc78458c6714ade"


async def test_a_new_password_stores_an_argon2_verifier_of_its_md5(world: World) -> None:
    room = await world.room(await world.password_room())
    verifier = room.syncplay_password_hash
    assert verifier is not None
    assert verifier.startswith("$argon2id$")
    assert MD5 not in verifier
    assert world.passwords.verify_sync(verifier, MD5)
    # Two verifiers, not interchangeable: each checks only its own form of the password.
    assert room.password_hash is not None
    assert not world.passwords.verify_sync(verifier, PASSWORD)
    assert not world.passwords.verify_sync(room.password_hash, MD5)
    assert (await world.room(await world.password_room(None))).syncplay_password_hash is None


async def test_the_right_md5_joins(world: World) -> None:
    room_id = await world.password_room()
    gus = guest()
    room, participant = await world.service.join(gus, room_id, syncplay_password=MD5)
    assert (participant.user_id, participant.role) == (gus.user_id, Role.MEMBER)
    assert room.participant_count == 2
    # A private room with a password takes its password (and so its MD5) for an invitation.
    private = await world.password_room(public=False)
    _, participant = await world.service.join(guest(), private, syncplay_password=MD5)
    assert participant.role is Role.MEMBER


async def test_a_wrong_md5_is_a_wrong_password_and_is_counted(world: World) -> None:
    room_id = await world.password_room()
    gus = guest()
    # Neither the password itself nor its MD5 in capitals is what Syncplay sends.
    wrong_ones = (WRONG_MD5, PASSWORD, MD5.upper())
    assert len(wrong_ones) == BUDGET
    for wrong in wrong_ones:
        assert await refusal(world.service.join(gus, room_id, syncplay_password=wrong)) == WRONG
    # Out of guesses now, even with the right MD5 or password, as after wrong passwords.
    assert (await refusal(world.service.join(gus, room_id, syncplay_password=MD5)))[:2] == (
        OUT_OF_GUESSES
    )
    assert (await refusal(world.service.join(gus, room_id, password=PASSWORD)))[:2] == (
        OUT_OF_GUESSES
    )
    assert await world.repo.get_participant(room_id, gus.user_id) is None


async def test_wrong_passwords_and_wrong_md5s_share_one_budget(world: World) -> None:
    room_id = await world.password_room()
    gus = guest()
    assert await refusal(world.service.join(gus, room_id, password="nope")) == WRONG
    assert await refusal(world.service.join(gus, room_id, syncplay_password=WRONG_MD5)) == WRONG
    assert await refusal(world.service.join(gus, room_id, password="nope again")) == WRONG
    refused = await refusal(world.service.join(gus, room_id, syncplay_password=MD5))
    assert refused[:2] == OUT_OF_GUESSES


async def test_a_right_md5_is_not_counted(world: World) -> None:
    gus = guest()
    for _ in range(BUDGET + 2):
        room_id = await world.password_room()
        await world.service.join(gus, room_id, syncplay_password=MD5)
    # A wrong one is still a plain wrong guess, not one past the budget.
    room_id = await world.password_room()
    assert await refusal(world.service.join(gus, room_id, syncplay_password=WRONG_MD5)) == WRONG


async def test_a_room_without_a_verifier_says_so_and_does_not_count_it(world: World) -> None:
    # A room whose password was set before 0005: written straight through the repository.
    old = await world.repo.create_room(
        NewRoom(
            uuid4(), "Old club", world.owner.user_id, "Olive", "movie", "m-1", True,
            await world.passwords.hash(PASSWORD), 10, T0,
        )
    )  # fmt: skip
    assert (old.has_password, old.syncplay_password_hash) == (True, None)
    gus = guest()
    # Right or wrong, there is nothing to check an MD5 against: never a guess.
    for md5 in [MD5, WRONG_MD5] * (BUDGET + 1):
        assert await refusal(world.service.join(gus, old.id, syncplay_password=md5)) == NO_VERIFIER
    # The whole budget is still there for passwords (and those still get in).
    for _ in range(BUDGET):
        assert await refusal(world.service.join(gus, old.id, password="nope")) == WRONG
    assert (await refusal(world.service.join(gus, old.id, password="nope")))[:2] == OUT_OF_GUESSES
    _, participant = await world.service.join(guest("Gil"), old.id, password=PASSWORD)
    assert participant.role is Role.MEMBER

    # The owner sets the password again: Syncplay clients can join with it now.
    await world.service.update_room(world.owner, old.id, RoomChanges(password=PASSWORD))
    assert (await world.room(old.id)).syncplay_password_hash is not None
    await world.service.join(guest("Sam"), old.id, syncplay_password=MD5)


async def test_a_cleared_password_clears_the_verifier_and_the_room_needs_none(
    world: World,
) -> None:
    room_id = await world.password_room()
    await world.service.update_room(world.owner, room_id, RoomChanges(clear_password=True))
    room = await world.room(room_id)
    assert (room.has_password, room.syncplay_password_hash) == (False, None)
    # Whatever a client still sends (it may have a password configured), it gets in.
    await world.service.join(guest(), room_id, syncplay_password=MD5)
    await world.service.join(guest(), room_id, syncplay_password=WRONG_MD5)
    await world.service.join(guest(), room_id)


async def test_rest_passwords_work_as_before_and_win_over_an_md5(world: World) -> None:
    room_id = await world.password_room()
    await world.service.join(guest(), room_id, password=PASSWORD)
    assert await refusal(world.service.join(guest(), room_id, password="nope")) == WRONG
    assert await refusal(world.service.join(guest(), room_id)) == WRONG
    # An MD5 is not the password, and the password is not an MD5.
    assert await refusal(world.service.join(guest(), room_id, password=MD5)) == WRONG
    # Given both, the password is what is checked.
    await world.service.join(guest(), room_id, password=PASSWORD, syncplay_password=WRONG_MD5)
    refused = await refusal(
        world.service.join(guest(), room_id, password="no", syncplay_password=MD5)
    )
    assert refused == WRONG


async def test_a_new_password_replaces_the_verifier(world: World) -> None:
    room_id = await world.password_room()
    before = (await world.room(room_id)).syncplay_password_hash
    await world.service.update_room(world.owner, room_id, RoomChanges(password="new horse"))
    assert (await world.room(room_id)).syncplay_password_hash not in (None, before)
    assert await refusal(world.service.join(guest(), room_id, syncplay_password=MD5)) == WRONG
    new_md5 = syncplay_password_md5("new horse")
    await world.service.join(guest(), room_id, syncplay_password=new_md5)
    # Other changes keep it.
    kept = (await world.room(room_id)).syncplay_password_hash
    await world.service.update_room(world.owner, room_id, RoomChanges(name="Renamed"))
    assert (await world.room(room_id)).syncplay_password_hash == kept
    await world.service.join(guest(), room_id, syncplay_password=new_md5)


async def test_who_needs_no_password_needs_no_md5(world: World) -> None:
    room_id = await world.password_room(public=False)
    # The owner and a member coming back, an admin, and an invitation's holder.
    await world.service.join(world.owner, room_id, syncplay_password=WRONG_MD5)
    member = guest()
    await world.service.join(member, room_id, syncplay_password=MD5)
    await world.service.join(member, room_id, syncplay_password=WRONG_MD5)
    admin = Principal(uuid4(), "root", is_admin=True)
    await world.service.join(admin, room_id, syncplay_password=WRONG_MD5)
    invitation = await world.service.create_invitation(world.owner, room_id)
    invited = guest("Ivy")
    _, participant = await world.service.join(
        invited, room_id, invitation_code=invitation.code, syncplay_password=WRONG_MD5
    )
    assert participant.user_id == invited.user_id
    assert len(await world.repo.list_participants(room_id)) == 4
