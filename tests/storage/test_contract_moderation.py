"""The repository contract for moderation: ownership transfer, the room's
``moderators_manage_moderators`` setting, bans and mutes (restrictions), and reading one
chat message. On memory, SQLite and PostgreSQL (the ``repo`` fixture); persistence across
a reopen on the two real databases (``database_url``).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta, timezone

import pytest
import trio

from syncplayd.storage import (
    ChatMessage,
    Repository,
    Role,
    RoomEnded,
    RoomFilters,
    RoomFull,
    RoomNotFound,
    RoomUpdate,
    StorageError,
    open_repository,
)
from syncplayd.storage.errors import NotAParticipant
from syncplayd.storage.records import Restriction, RestrictionKind
from tests.storage.factories import T0, at, new_room

BAN, MUTE = RestrictionKind.BAN, RestrictionKind.MUTE


def restriction(
    room_id: uuid.UUID,
    user_id: uuid.UUID | None = None,
    kind: RestrictionKind = BAN,
    *,
    created: float = 0.0,
    expires: float | None = None,
    reason: str | None = "spoilers",
    user_name: str | None = "Mallory",
    created_by: uuid.UUID | None = None,
) -> Restriction:
    return Restriction(
        room_id=room_id,
        user_id=user_id or uuid.uuid4(),
        kind=kind,
        user_name=user_name,
        reason=reason,
        created_by=created_by or uuid.uuid4(),
        created_at=at(created),
        expires_at=None if expires is None else at(expires),
    )


# -- the room's setting ----------------------------------------------------------------------


async def test_moderators_manage_moderators_is_off_and_can_be_switched(repo: Repository) -> None:
    room = await repo.create_room(new_room(password_hash="pw"))
    assert room.moderators_manage_moderators is False

    on = await repo.update_room(
        room.id, RoomUpdate(updated_at=at(5), moderators_manage_moderators=True)
    )
    assert on is not None
    assert on.moderators_manage_moderators is True
    assert on.updated_at == at(5)
    # Nothing else moved.
    assert dataclasses.replace(on, moderators_manage_moderators=False, updated_at=at(0)) == room
    assert await repo.get_room(room.id) == on
    assert (await repo.list_rooms(RoomFilters(), 10, 0))[0] == [on]

    # None leaves it as it is, whatever else changes.
    renamed = await repo.update_room(room.id, RoomUpdate(updated_at=at(6), name="Other"))
    assert renamed is not None
    assert (renamed.name, renamed.moderators_manage_moderators) == ("Other", True)

    off = await repo.update_room(
        room.id, RoomUpdate(updated_at=at(7), moderators_manage_moderators=False)
    )
    assert off is not None
    assert off.moderators_manage_moderators is False
    assert await repo.get_room(room.id) == off


# -- ownership -------------------------------------------------------------------------------


async def test_transfer_ownership(repo: Repository) -> None:
    room = await repo.create_room(new_room(owner_name="Olive"))
    heir = uuid.uuid4()
    await repo.add_participant(room.id, heir, "Hana", Role.MEMBER, at(1))
    bystander = uuid.uuid4()
    await repo.add_participant(room.id, bystander, "Bea", Role.MODERATOR, at(2))

    moved = await repo.transfer_ownership(room.id, heir, at(30))
    assert moved.owner_id == heir
    assert moved.updated_at == at(30)
    assert moved.participant_count == 3
    assert dataclasses.replace(moved, owner_id=room.owner_id, updated_at=at(0)) == (
        dataclasses.replace(room, participant_count=3)
    )
    assert await repo.get_room(room.id) == moved

    roles = {p.user_id: p.role for p in await repo.list_participants(room.id)}
    assert roles == {room.owner_id: Role.MODERATOR, heir: Role.OWNER, bystander: Role.MODERATOR}
    # Everything that reads the owner reads the new one.
    assert await repo.owner_names([room.id]) == {room.id: "Hana"}
    rooms, _ = await repo.list_rooms(RoomFilters(member=heir), 10, 0)
    assert [r.id for r in rooms] == [room.id]

    # And back: the first owner, now a moderator, becomes owner again.
    back = await repo.transfer_ownership(room.id, room.owner_id, at(40))
    assert back.owner_id == room.owner_id
    roles = {p.user_id: p.role for p in await repo.list_participants(room.id)}
    assert roles == {room.owner_id: Role.OWNER, heir: Role.MODERATOR, bystander: Role.MODERATOR}


async def test_transfer_to_the_current_owner_changes_nothing(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    same = await repo.transfer_ownership(room.id, room.owner_id, at(50))
    assert same == room  # updated_at too
    assert await repo.get_room(room.id) == room
    owner = await repo.get_participant(room.id, room.owner_id)
    assert owner is not None
    assert owner.role == Role.OWNER


async def test_transfer_when_the_owner_has_left(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    heir = uuid.uuid4()
    await repo.add_participant(room.id, heir, "Hana", Role.MEMBER, at(1))
    assert await repo.remove_participant(room.id, room.owner_id)

    moved = await repo.transfer_ownership(room.id, heir, at(9))
    assert (moved.owner_id, moved.participant_count) == (heir, 1)
    # The previous owner is not brought back as a moderator.
    assert await repo.get_participant(room.id, room.owner_id) is None
    members = await repo.list_participants(room.id)
    assert [(m.user_id, m.role) for m in members] == [(heir, Role.OWNER)]


async def test_transfer_ownership_errors_change_nothing(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.transfer_ownership(uuid.uuid4(), uuid.uuid4(), at(1))

    room = await repo.create_room(new_room())
    with pytest.raises(NotAParticipant):
        await repo.transfer_ownership(room.id, uuid.uuid4(), at(1))
    left = uuid.uuid4()
    await repo.add_participant(room.id, left, "Gone", Role.MEMBER, at(1))
    await repo.remove_participant(room.id, left)
    with pytest.raises(NotAParticipant):
        await repo.transfer_ownership(room.id, left, at(2))
    assert await repo.get_room(room.id) == room

    heir = uuid.uuid4()
    await repo.add_participant(room.id, heir, "Hana", Role.MEMBER, at(3))
    assert await repo.end_room(room.id, at(4))
    ended = await repo.get_room(room.id)
    with pytest.raises(RoomEnded):
        await repo.transfer_ownership(room.id, heir, at(5))
    assert await repo.get_room(room.id) == ended
    heir_row = await repo.get_participant(room.id, heir)
    assert heir_row is not None
    assert heir_row.role == Role.MEMBER


async def test_concurrent_transfers_leave_one_owner(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    heirs = [uuid.uuid4() for _ in range(6)]
    for i, heir in enumerate(heirs):
        await repo.add_participant(room.id, heir, f"H{i}", Role.MEMBER, at(1))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for heir in heirs:
                nursery.start_soon(repo.transfer_ownership, room.id, heir, at(2))

    stored = await repo.get_room(room.id)
    assert stored is not None
    members = await repo.list_participants(room.id)
    owners = [m.user_id for m in members if m.role == Role.OWNER]
    # Each transfer demoted the owner it found: exactly one owner, the room's.
    assert owners == [stored.owner_id]
    assert stored.owner_id in heirs
    assert sorted(m.role for m in members if m.role != Role.OWNER) == [Role.MODERATOR] * 6


# -- restrictions ----------------------------------------------------------------------------


async def test_set_and_get_restriction(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    ban = restriction(room.id, user, BAN, created=10, expires=3600, reason="ü" * 500)
    assert await repo.set_restriction(ban) == ban
    assert await repo.get_restriction(room.id, user, BAN) == ban
    assert await repo.get_restriction(room.id, user, MUTE) is None
    assert await repo.get_restriction(room.id, uuid.uuid4(), BAN) is None
    assert await repo.get_restriction(uuid.uuid4(), user, BAN) is None

    # A mute of the same user is a separate restriction; without expiry, reason or name.
    mute = restriction(room.id, user, MUTE, created=11, reason=None, user_name=None)
    assert await repo.set_restriction(mute) == mute
    assert await repo.get_restriction(room.id, user, MUTE) == mute
    assert await repo.get_restriction(room.id, user, BAN) == ban


async def test_set_restriction_replaces_the_same_kind(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    await repo.set_restriction(restriction(room.id, user, BAN, created=1, expires=100))
    mute = await repo.set_restriction(restriction(room.id, user, MUTE, created=1))

    again = restriction(room.id, user, BAN, created=5, expires=None, reason=None, user_name="M2")
    assert await repo.set_restriction(again) == again
    assert await repo.get_restriction(room.id, user, BAN) == again
    assert await repo.list_restrictions(room.id, BAN, None) == [again]
    assert await repo.get_restriction(room.id, user, MUTE) == mute  # the other kind stays


async def test_restriction_times_come_back_in_utc(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    plus_two = timezone(timedelta(hours=2))
    made = dataclasses.replace(
        restriction(room.id),
        created_at=T0.astimezone(plus_two),
        expires_at=(T0 + timedelta(seconds=60)).replace(tzinfo=None),  # naive: UTC
    )
    stored = await repo.set_restriction(made)
    assert (stored.created_at, stored.expires_at) == (T0, at(60))
    assert stored.created_at.utcoffset() == timedelta(0)
    assert await repo.get_restriction(room.id, made.user_id, BAN) == stored


async def test_set_restriction_errors(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.set_restriction(restriction(uuid.uuid4()))
    room = await repo.create_room(new_room())
    too_long = restriction(room.id, reason="x" * 501)
    with pytest.raises(StorageError):
        await repo.set_restriction(too_long)
    assert await repo.get_restriction(room.id, too_long.user_id, BAN) is None


async def test_list_restrictions_newest_first_and_active(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    forever = await repo.set_restriction(restriction(room.id, created=1))
    expired = await repo.set_restriction(restriction(room.id, created=2, expires=50))
    edge = await repo.set_restriction(restriction(room.id, created=3, expires=100))
    later = await repo.set_restriction(restriction(room.id, created=4, expires=200))
    twins = [await repo.set_restriction(restriction(room.id, created=5)) for _ in range(2)]
    await repo.set_restriction(restriction(room.id, created=6, kind=MUTE))
    await repo.set_restriction(restriction(other.id, created=7))
    newest = sorted(twins, key=lambda r: r.user_id, reverse=True)

    everything = [*newest, later, edge, expired, forever]
    assert await repo.list_restrictions(room.id, BAN, None) == everything
    # Active at 100: not expired, and an expiry *at* that time has expired.
    assert await repo.list_restrictions(room.id, BAN, at(100)) == [*newest, later, forever]
    assert await repo.list_restrictions(room.id, BAN, at(99)) == [*newest, later, edge, forever]
    assert len(await repo.list_restrictions(room.id, MUTE, None)) == 1
    assert len(await repo.list_restrictions(other.id, BAN, at(1000))) == 1
    assert await repo.list_restrictions(uuid.uuid4(), BAN, None) == []


async def test_delete_restriction(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    await repo.set_restriction(restriction(room.id, user, BAN))
    mute = await repo.set_restriction(restriction(room.id, user, MUTE))
    assert await repo.delete_restriction(room.id, user, BAN)
    assert not await repo.delete_restriction(room.id, user, BAN)
    assert await repo.get_restriction(room.id, user, BAN) is None
    assert await repo.get_restriction(room.id, user, MUTE) == mute
    assert not await repo.delete_restriction(uuid.uuid4(), user, MUTE)
    assert not await repo.delete_restriction(room.id, uuid.uuid4(), MUTE)


async def test_purge_expired_restrictions(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    old = await repo.set_restriction(restriction(room.id, expires=10))
    old_mute = await repo.set_restriction(restriction(other.id, kind=MUTE, expires=15))
    edge = await repo.set_restriction(restriction(room.id, expires=20))
    forever = await repo.set_restriction(restriction(room.id))

    assert await repo.purge_expired_restrictions(at(20)) == 2
    assert await repo.get_restriction(room.id, old.user_id, BAN) is None
    assert await repo.get_restriction(other.id, old_mute.user_id, MUTE) is None
    assert await repo.get_restriction(room.id, edge.user_id, BAN) == edge  # expired *at*
    assert await repo.purge_expired_restrictions(at(1_000_000)) == 1
    assert await repo.list_restrictions(room.id, BAN, None) == [forever]  # never expires
    assert await repo.purge_expired_restrictions(at(1_000_000)) == 0


async def test_restrictions_outlive_the_membership(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    await repo.add_participant(room.id, user, "Mallory", Role.MEMBER, at(1))
    ban = await repo.set_restriction(restriction(room.id, user))
    assert await repo.remove_participant(room.id, user)
    assert await repo.get_restriction(room.id, user, BAN) == ban
    assert await repo.end_room(room.id, at(5))
    assert await repo.get_restriction(room.id, user, BAN) == ban


async def test_restrictions_go_with_their_room(repo: Repository) -> None:
    deleted = await repo.create_room(new_room())
    purged = await repo.create_room(new_room())
    kept = await repo.create_room(new_room())
    user = uuid.uuid4()
    for room in (deleted, purged, kept):
        await repo.set_restriction(restriction(room.id, user, BAN))
        await repo.set_restriction(restriction(room.id, user, MUTE))

    assert await repo.delete_room(deleted.id)
    await repo.end_room(purged.id, at(1))
    assert await repo.purge_ended_rooms(at(2), 10) == 1
    for room in (deleted, purged):
        for kind in (BAN, MUTE):
            assert await repo.get_restriction(room.id, user, kind) is None
            assert await repo.list_restrictions(room.id, kind, None) == []
    for kind in (BAN, MUTE):
        assert await repo.get_restriction(kept.id, user, kind) is not None
    # A room made again with the same id starts with no restrictions.
    again = await repo.create_room(new_room(room_id=deleted.id))
    assert await repo.list_restrictions(again.id, BAN, None) == []


# -- chat ------------------------------------------------------------------------------------


async def test_get_chat_message(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    sent = await repo.create_chat_message(
        ChatMessage(uuid.uuid4(), room.id, user, "Bob", "hello", at(3))
    )
    assert await repo.get_chat_message(sent.id) == sent
    assert await repo.get_chat_message(uuid.uuid4()) is None
    assert await repo.delete_chat_message(sent.id)
    assert await repo.get_chat_message(sent.id) is None


# -- persistence -----------------------------------------------------------------------------


async def test_moderation_survives_reopening(database_url: str) -> None:
    repo = await open_repository(database_url)
    try:
        room = await repo.create_room(new_room())
        heir = uuid.uuid4()
        await repo.add_participant(room.id, heir, "Hana", Role.MEMBER, at(1))
        await repo.transfer_ownership(room.id, heir, at(2))
        await repo.update_room(
            room.id, RoomUpdate(updated_at=at(3), moderators_manage_moderators=True)
        )
        ban = await repo.set_restriction(restriction(room.id, expires=100))
        mute = await repo.set_restriction(restriction(room.id, kind=MUTE, reason=None))
        before = await repo.get_room(room.id)
    finally:
        await repo.aclose()

    repo = await open_repository(database_url, auto_migrate=False)
    try:
        stored = await repo.get_room(room.id)
        assert stored == before
        assert stored is not None
        assert (stored.owner_id, stored.moderators_manage_moderators) == (heir, True)
        assert await repo.list_restrictions(room.id, BAN, None) == [ban]
        assert await repo.list_restrictions(room.id, MUTE, at(1000)) == [mute]
    finally:
        await repo.aclose()


# -- a join's preconditions in one read ------------------------------------------------------


async def test_standing_reads_room_membership_and_restrictions_at_once(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user, other = uuid.uuid4(), uuid.uuid4()

    nobody = await repo.get_standing(room.id, user)
    assert nobody.room == await repo.get_room(room.id)
    assert (nobody.participant, nobody.restrictions) == (None, ())

    member, _ = await repo.add_participant(room.id, user, "Mallory", Role.MEMBER, at(1))
    ban = await repo.set_restriction(restriction(room.id, user, BAN, expires=100.0))
    mute = await repo.set_restriction(restriction(room.id, user, MUTE, expires=10.0))
    await repo.set_restriction(restriction(room.id, other, BAN))  # someone else's
    standing = await repo.get_standing(room.id, user)
    assert standing.room == await repo.get_room(room.id)
    assert standing.room is not None and nobody.room is not None
    assert standing.room.participant_count == nobody.room.participant_count + 1
    assert standing.participant == member
    assert standing.restrictions == (ban, mute)  # expired or not, bans first
    # Which are in force is the reader's question, at the time it asks.
    assert standing.active(BAN, at(50)) == ban and standing.active(MUTE, at(50)) is None
    assert standing.active(MUTE, at(5)) == mute and standing.active(BAN, at(100)) is None


async def test_standing_in_a_room_that_does_not_exist(repo: Repository) -> None:
    standing = await repo.get_standing(uuid.uuid4(), uuid.uuid4())
    assert (standing.room, standing.participant, standing.restrictions) == (None, None, ())


async def test_admit_stores_the_membership_then_reads_the_standing(repo: Repository) -> None:
    """A join's write and its check after it: the standing read is the stored one, with the
    new member counted and the restrictions stored before (the storage refuses nobody)."""
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    ban = await repo.set_restriction(restriction(room.id, user, BAN))
    member, standing = await repo.admit_participant(room.id, user, "Mallory", Role.MEMBER, at(2))
    assert member == await repo.get_participant(room.id, user)
    assert (member.user_name, member.role, member.joined_at) == ("Mallory", Role.MEMBER, at(2))
    assert standing == await repo.get_standing(room.id, user)
    assert standing.participant == member and standing.restrictions == (ban,)
    assert standing.room is not None and standing.room.participant_count == 2
    # A member again: unchanged but for the name, as add_participant.
    again, standing = await repo.admit_participant(room.id, user, "Mal", Role.MODERATOR, at(3))
    assert (again.user_name, again.role, again.joined_at) == ("Mal", Role.MEMBER, at(2))
    assert standing.participant == again


async def test_admit_refuses_as_add_participant_does(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.admit_participant(uuid.uuid4(), uuid.uuid4(), "X", Role.MEMBER, at(1))
    full = await repo.create_room(new_room(max_participants=1))  # the owner's seat
    newcomer = uuid.uuid4()
    with pytest.raises(RoomFull):
        await repo.admit_participant(full.id, newcomer, "Third", Role.MEMBER, at(1))
    assert await repo.get_participant(full.id, newcomer) is None
    ended = await repo.create_room(new_room())
    await repo.end_room(ended.id, at(1))
    with pytest.raises(RoomEnded):
        await repo.admit_participant(ended.id, newcomer, "Late", Role.MEMBER, at(2))
