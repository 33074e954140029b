"""Roles, ownership, kicks, bans, mutes and chat deletion, through ``service.moderation``.

The world is the in-memory repository with a wall clock moved by hand. The
repository notes each write in a journal once it is stored, and the fake
``LiveRooms`` notes each call in the same journal, so a test reads, in order,
what was stored, logged and told: a live room must never hear of a change
before it is durable. (The rule table itself is tests/core/test_access.py;
these tests check that the service asks it with the right facts.)
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from syncplayd.config import load_settings
from syncplayd.core.roles import Role
from syncplayd.identity import Principal
from syncplayd.service import LiveRooms, Removal, RoomChanges, RoomService, ServiceError
from syncplayd.storage import MemoryRepository
from syncplayd.storage.records import ChatMessage, RestrictionKind, Room

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ADMIN = Principal(uuid4(), "root", is_admin=True)

#: One line per thing that happened: ("stored", write), ("logged", event type) or
#: ("live", call, arguments).
Journal = list[tuple[Any, ...]]


class JournaledRepository(MemoryRepository):
    """The memory repository; each write that changed something is noted in the journal
    once it is stored."""

    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    async def update_participant(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().update_participant(*args, **kwargs)
        if done:
            self.journal.append(("stored", "update_participant"))
        return done

    async def remove_participant(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().remove_participant(*args, **kwargs)
        if done:
            self.journal.append(("stored", "remove_participant"))
        return done

    async def transfer_ownership(self, *args: Any, **kwargs: Any) -> Room:
        room = await super().transfer_ownership(*args, **kwargs)
        self.journal.append(("stored", "transfer_ownership"))
        return room

    async def set_restriction(self, *args: Any, **kwargs: Any) -> Any:
        stored = await super().set_restriction(*args, **kwargs)
        self.journal.append(("stored", "set_restriction"))
        return stored

    async def delete_restriction(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().delete_restriction(*args, **kwargs)
        if done:
            self.journal.append(("stored", "delete_restriction"))
        return done

    async def delete_chat_message(self, *args: Any, **kwargs: Any) -> bool:
        done = await super().delete_chat_message(*args, **kwargs)
        if done:
            self.journal.append(("stored", "delete_chat_message"))
        return done

    async def log_events(self, events: Any) -> None:
        await super().log_events(events)
        self.journal.extend(("logged", event.type) for event in events)


@dataclass
class RecordedRooms:
    """The live side: notes every call in the journal; a removal closes ``sessions``."""

    journal: Journal
    sessions: int = 0

    def chat_posted(self, message: ChatMessage) -> None:
        self.journal.append(("live", "chat_posted", message.id))

    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None:
        self.journal.append(("live", "chat_deleted", (room_id, message_id)))

    def room_ended(self, room_id: UUID) -> None:
        self.journal.append(("live", "room_ended", room_id))

    def room_updated(self, room: Room) -> None:
        self.journal.append(("live", "room_updated", room.owner_id))

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None:
        self.journal.append(("live", "role_changed", (room_id, user_id, role)))

    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        self.journal.append(("live", "mute_changed", (room_id, user_id, muted)))

    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        self.journal.append(("live", "remove_user", (room_id, user_id, reason, message)))
        return self.sessions


@dataclass
class WallClock:
    """The service's wall clock, moved by hand."""

    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    """A public room owned by Ada, with Bob and Bea as moderators, Cleo and Dan as members."""

    clock: WallClock
    service: RoomService
    repo: JournaledRepository
    live: RecordedRooms
    room: Room
    ada: Principal  # owner
    bob: Principal  # moderator
    bea: Principal  # moderator
    cleo: Principal  # member
    dan: Principal  # member
    journal: Journal  # shared by the repository and the live fake

    @property
    def id(self) -> UUID:
        return self.room.id

    async def role(self, who: Principal) -> Role | None:
        found = await self.repo.get_participant(self.id, who.user_id)
        return None if found is None else found.role

    async def events(self) -> list[tuple[str, UUID | None, dict[str, Any]]]:
        """The room's events, oldest first, as (type, user, payload)."""
        items, _ = await self.repo.list_events(self.id, 100, 0)
        return [(e.type, e.user_id, e.payload) for e in reversed(items)]

    async def allow_moderators_on_moderators(self) -> None:
        changes = RoomChanges(moderators_manage_moderators=True)
        await self.service.update_room(self.ada, self.id, changes)
        self.journal.clear()


@pytest.fixture
async def world(tmp_path: Path) -> World:
    journal: Journal = []
    repo = JournaledRepository(journal)
    settings = load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)}).syncplay
    clock = WallClock()
    service = RoomService(repo, settings, wall_clock=clock)
    live = RecordedRooms(journal)
    checked: LiveRooms = live  # the fake keeps to the protocol (mypy checks it)
    service.live = checked
    ada, bob, bea, cleo, dan = (Principal(uuid4(), n) for n in ("Ada", "Bob", "Bea", "Cleo", "Dan"))
    room = await service.create_room(
        ada, name="r", content_type="movie", content_id="1", is_public=True,
        password=None, max_participants=None,
    )  # fmt: skip
    for who in (bob, bea, cleo, dan):
        await service.join(who, room.id)
    for who in (bob, bea):  # straight in storage: the fixture does not lean on set_role
        await repo.update_participant(room.id, who.user_id, role=Role.MODERATOR)
    journal.clear()
    return World(clock, service, repo, live, room, ada, bob, bea, cleo, dan, journal)


async def refusal(call: Awaitable[object]) -> tuple[int, str, str]:
    """The (status, code, detail) a call is refused with."""
    with pytest.raises(ServiceError) as refused:
        await call
    return refused.value.status, refused.value.code, refused.value.detail


FORBIDDEN = (403, "forbidden")
NOT_A_MEMBER = (404, "not-a-member")
OWNER_UNTOUCHABLE = (403, "forbidden", "nobody can do that to the room's owner")
NOT_ON_THE_OWNER = (403, "forbidden", "moderators cannot act on the room's owner")
NOT_ON_MODERATORS = (403, "forbidden", "moderators cannot act on other moderators in this room")


# -- roles -------------------------------------------------------------------------------
async def test_the_owner_promotes_and_demotes(world: World) -> None:
    made = await world.service.moderation.set_role(
        world.ada, world.id, world.cleo.user_id, Role.MODERATOR
    )
    assert (made.user_id, made.role) == (world.cleo.user_id, Role.MODERATOR)
    assert await world.role(world.cleo) is Role.MODERATOR
    assert world.journal == [
        ("stored", "update_participant"),
        ("logged", "role"),
        ("live", "role_changed", (world.id, world.cleo.user_id, Role.MODERATOR)),
    ]
    world.journal.clear()
    unmade = await world.service.moderation.set_role(
        world.ada, world.id, world.bob.user_id, Role.MEMBER
    )
    assert unmade.role is Role.MEMBER
    assert await world.role(world.bob) is Role.MEMBER
    assert world.journal[-1] == ("live", "role_changed", (world.id, world.bob.user_id, Role.MEMBER))
    by = str(world.ada.user_id)
    assert await world.events() == [
        ("role", world.cleo.user_id, {"by": by, "role": "moderator"}),
        ("role", world.bob.user_id, {"by": by, "role": "member"}),
    ]


async def test_setting_the_role_someone_has_changes_nothing(world: World) -> None:
    moderation = world.service.moderation
    same = await moderation.set_role(world.ada, world.id, world.bob.user_id, Role.MODERATOR)
    assert same.role is Role.MODERATOR
    same = await moderation.set_role(world.ada, world.id, world.cleo.user_id, Role.MEMBER)
    assert same.role is Role.MEMBER
    assert world.journal == []
    assert await world.events() == []


async def test_roles_are_the_owners_and_admins_to_set(world: World) -> None:
    moderation = world.service.moderation
    for caller in (world.bob, world.cleo):
        status, code, _ = await refusal(
            moderation.set_role(caller, world.id, world.dan.user_id, Role.MODERATOR)
        )
        assert (status, code) == FORBIDDEN
    assert await world.role(world.dan) is Role.MEMBER
    assert world.journal == []
    await moderation.set_role(ADMIN, world.id, world.dan.user_id, Role.MODERATOR)
    assert await world.role(world.dan) is Role.MODERATOR
    (event,) = await world.events()
    assert event[2]["by"] == str(ADMIN.user_id)


@pytest.mark.parametrize("role", [Role.MODERATOR, Role.MEMBER])
async def test_nobody_changes_the_owners_role(world: World, role: Role) -> None:
    # "Promoting" the owner to moderator would demote them: refused like a demotion.
    for caller in (ADMIN, world.bob):
        refused = await refusal(
            world.service.moderation.set_role(caller, world.id, world.ada.user_id, role)
        )
        assert refused == OWNER_UNTOUCHABLE
    assert await world.role(world.ada) is Role.OWNER
    assert world.journal == []


async def test_a_role_is_for_a_participant_and_someone_else(world: World) -> None:
    moderation = world.service.moderation
    status, code, _ = await refusal(
        moderation.set_role(world.ada, world.id, uuid4(), Role.MODERATOR)
    )
    assert (status, code) == NOT_A_MEMBER
    status, code, _ = await refusal(
        moderation.set_role(world.ada, world.id, world.ada.user_id, Role.MEMBER)
    )
    assert (status, code) == (422, "validation-failed")
    status, code, _ = await refusal(
        moderation.set_role(world.ada, world.id, world.cleo.user_id, Role.OWNER)
    )
    assert (status, code) == (422, "validation-failed")  # ownership moves by transfer only
    status, code, _ = await refusal(
        moderation.set_role(world.ada, uuid4(), world.cleo.user_id, Role.MODERATOR)
    )
    assert (status, code) == (404, "not-found")
    assert world.journal == []


async def test_a_role_answer_says_whether_the_participant_is_muted(world: World) -> None:
    moderation = world.service.moderation
    await moderation.mute(world.ada, world.id, world.cleo.user_id)
    made = await moderation.set_role(world.ada, world.id, world.cleo.user_id, Role.MODERATOR)
    assert made.muted
    same = await moderation.set_role(world.ada, world.id, world.cleo.user_id, Role.MODERATOR)
    assert same.muted


async def test_an_ended_room_takes_no_changes_but_kicks(world: World) -> None:
    await world.service.end_room(world.ada, world.id)
    world.journal.clear()
    moderation = world.service.moderation
    cleo = world.cleo.user_id
    changes = [
        moderation.set_role(world.ada, world.id, cleo, Role.MODERATOR),
        moderation.transfer(world.ada, world.id, cleo),
        moderation.ban(world.ada, world.id, cleo),
        moderation.mute(world.ada, world.id, cleo),
    ]
    for change in changes:
        status, code, _ = await refusal(change)
        assert (status, code) == (410, "room-ended")
    assert world.journal == []
    kicked = await moderation.kick(world.ada, world.id, cleo)
    assert kicked.removed


# -- ownership ----------------------------------------------------------------------------
async def test_transfer_makes_a_new_owner_and_the_old_one_a_moderator(world: World) -> None:
    room = await world.service.moderation.transfer(world.ada, world.id, world.cleo.user_id)
    assert room.owner_id == world.cleo.user_id
    stored = await world.repo.get_room(world.id)
    assert stored is not None and stored.owner_id == world.cleo.user_id
    assert await world.role(world.cleo) is Role.OWNER
    assert await world.role(world.ada) is Role.MODERATOR
    assert world.journal == [
        ("stored", "transfer_ownership"),
        ("logged", "owner"),
        ("live", "role_changed", (world.id, world.ada.user_id, Role.MODERATOR)),
        ("live", "role_changed", (world.id, world.cleo.user_id, Role.OWNER)),
        ("live", "room_updated", world.cleo.user_id),
    ]
    from_, to = str(world.ada.user_id), str(world.cleo.user_id)
    assert await world.events() == [
        ("owner", world.cleo.user_id, {"by": from_, "from": from_, "to": to}),
    ]


async def test_after_a_transfer_the_rules_follow_the_new_owner(world: World) -> None:
    moderation = world.service.moderation
    await moderation.transfer(world.ada, world.id, world.cleo.user_id)
    world.journal.clear()
    status, code, _ = await refusal(moderation.transfer(world.ada, world.id, world.ada.user_id))
    assert (status, code) == FORBIDDEN  # Ada is a moderator now
    cleo = world.cleo.user_id
    for caller in (world.ada, ADMIN):
        assert await refusal(moderation.set_role(caller, world.id, cleo, Role.MEMBER)) == (
            OWNER_UNTOUCHABLE
        )
        assert await refusal(moderation.ban(caller, world.id, cleo)) == OWNER_UNTOUCHABLE
        assert await refusal(moderation.mute(caller, world.id, cleo)) == OWNER_UNTOUCHABLE
    assert await refusal(moderation.kick(world.ada, world.id, cleo)) == NOT_ON_THE_OWNER
    assert world.journal == []
    # ... and the new owner may act on the old one, a moderator now.
    await moderation.set_role(world.cleo, world.id, world.ada.user_id, Role.MEMBER)
    assert await world.role(world.ada) is Role.MEMBER


async def test_transfer_is_the_owners_to_a_participant(world: World) -> None:
    moderation = world.service.moderation
    for caller in (world.bob, world.cleo):
        status, code, _ = await refusal(moderation.transfer(caller, world.id, world.dan.user_id))
        assert (status, code) == FORBIDDEN
    status, code, _ = await refusal(moderation.transfer(world.ada, world.id, uuid4()))
    assert (status, code) == NOT_A_MEMBER
    same = await moderation.transfer(world.ada, world.id, world.ada.user_id)
    assert same.owner_id == world.ada.user_id
    assert world.journal == []
    room = await moderation.transfer(ADMIN, world.id, world.dan.user_id)
    assert room.owner_id == world.dan.user_id
    ((_, _, payload),) = await world.events()
    assert payload["by"] == str(ADMIN.user_id)


async def test_a_transfer_lifts_the_new_owners_mute(world: World) -> None:
    moderation = world.service.moderation
    await moderation.mute(world.bob, world.id, world.cleo.user_id)
    world.journal.clear()
    await moderation.transfer(world.ada, world.id, world.cleo.user_id)
    assert not await moderation.is_muted(world.id, world.cleo.user_id)
    await world.service.post_chat(world.cleo, world.id, "mine now")
    assert world.journal.index(("stored", "delete_restriction")) < world.journal.index(
        ("live", "mute_changed", (world.id, world.cleo.user_id, False))
    )
    assert [kind for kind, _, _ in await world.events()] == ["muted", "owner", "unmuted"]


# -- kicks -------------------------------------------------------------------------------
async def test_a_moderator_kicks_a_member_with_a_reason(world: World) -> None:
    world.live.sessions = 2
    kicked = await world.service.moderation.kick(
        world.bob, world.id, world.cleo.user_id, reason="  too\n loud  "
    )
    assert (kicked.removed, kicked.sessions_closed) == (True, 2)
    assert await world.role(world.cleo) is None
    told = "Bob removed you from the room: too loud"
    assert world.journal == [
        ("stored", "remove_participant"),
        ("live", "remove_user", (world.id, world.cleo.user_id, "kicked", told)),
        ("logged", "kicked"),
    ]
    assert await world.events() == [
        (
            "kicked",
            world.cleo.user_id,
            {"by": str(world.bob.user_id), "sessions": 2, "reason": "too loud"},
        )
    ]
    # A kick is not a ban.
    await world.service.join(world.cleo, world.id)


async def test_an_administrators_kick_without_a_reason(world: World) -> None:
    await world.service.moderation.kick(ADMIN, world.id, world.cleo.user_id)
    (call,) = [line for line in world.journal if line[0] == "live"]
    assert call[2][3] == "an administrator removed you from the room"
    ((_, _, payload),) = await world.events()
    assert payload == {"by": str(ADMIN.user_id), "sessions": 0, "reason": None}


@pytest.mark.parametrize(
    ("reason", "field_message"),
    [("a\x1bb", "control characters"), ("x" * 501, "at most 500")],
)
async def test_a_bad_reason_is_refused(world: World, reason: str, field_message: str) -> None:
    status, code, detail = await refusal(
        world.service.moderation.kick(world.ada, world.id, world.cleo.user_id, reason=reason)
    )
    assert (status, code) == (422, "validation-failed")
    assert detail.startswith("reason:") and field_message in detail
    assert world.journal == []


async def test_who_may_kick_whom(world: World) -> None:
    moderation = world.service.moderation
    assert await refusal(moderation.kick(world.bob, world.id, world.ada.user_id)) == (
        NOT_ON_THE_OWNER
    )
    assert await refusal(moderation.kick(world.bob, world.id, world.bea.user_id)) == (
        NOT_ON_MODERATORS
    )
    status, code, _ = await refusal(moderation.kick(world.cleo, world.id, world.dan.user_id))
    assert (status, code) == FORBIDDEN
    status, code, _ = await refusal(moderation.kick(world.bob, world.id, world.bob.user_id))
    assert (status, code) == (422, "validation-failed")
    status, code, _ = await refusal(moderation.kick(world.bob, world.id, uuid4()))
    assert (status, code) == NOT_A_MEMBER  # no membership and no live session
    assert all(line[0] != "stored" or line[1] != "remove_participant" for line in world.journal)
    await world.allow_moderators_on_moderators()
    await moderation.kick(world.bob, world.id, world.bea.user_id)
    assert await world.role(world.bea) is None
    # Still never the owner.
    assert await refusal(moderation.kick(world.bob, world.id, world.ada.user_id)) == (
        NOT_ON_THE_OWNER
    )


# -- bans --------------------------------------------------------------------------------
async def test_a_ban_removes_the_member_and_says_until_when(world: World) -> None:
    world.live.sessions = 1
    ban = await world.service.moderation.ban(
        world.bob, world.id, world.cleo.user_id, reason="spoilers", expires_in=timedelta(hours=4)
    )
    assert (ban.user_id, ban.user_name, ban.reason) == (world.cleo.user_id, "Cleo", "spoilers")
    assert (ban.created_by, ban.created_at) == (world.bob.user_id, NOW)
    assert ban.expires_at == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    assert await world.role(world.cleo) is None
    told = "Bob banned you from the room until 2026-12-05T16:00:00Z: spoilers"
    assert world.journal == [
        ("stored", "set_restriction"),
        ("stored", "remove_participant"),
        ("live", "remove_user", (world.id, world.cleo.user_id, "banned", told)),
        ("logged", "banned"),
    ]
    assert await world.events() == [
        (
            "banned",
            world.cleo.user_id,
            {
                "by": str(world.bob.user_id),
                "reason": "spoilers",
                "expires_at": "2026-12-05T16:00:00Z",
                "removed": True,
                "sessions": 1,
            },
        )
    ]


async def test_a_ban_refuses_every_join_until_it_expires(world: World) -> None:
    await world.service.moderation.ban(
        world.ada, world.id, world.cleo.user_id, reason="spoilers", expires_in=timedelta(hours=4)
    )
    invitation = await world.service.create_invitation(world.ada, world.id)
    joins = [
        world.service.join(world.cleo, world.id),
        world.service.join(world.cleo, world.id, invitation_code=invitation.code),
        # The invite page learns it too, instead of offering a join that will be refused.
        world.service.get_invitation(world.cleo, invitation.code),
    ]
    for join in joins:
        assert await refusal(join) == (
            403,
            "banned",
            "you are banned from this room until 2026-12-05T16:00:00Z: spoilers",
        )
    found = await world.repo.get_invitation(invitation.code)
    assert found is not None and found.use_count == 0  # the refusal came before its use
    world.clock.at = NOW + timedelta(hours=4) - timedelta(microseconds=1)
    assert (await refusal(world.service.join(world.cleo, world.id)))[1] == "banned"
    world.clock.at = NOW + timedelta(hours=4)
    found, _ = await world.service.get_invitation(world.cleo, invitation.code)
    assert found.code == invitation.code
    _, participant = await world.service.join(world.cleo, world.id)
    assert participant.role is Role.MEMBER


async def test_a_ban_for_good_lasts_until_it_is_lifted(world: World) -> None:
    moderation = world.service.moderation
    await moderation.ban(world.ada, world.id, world.cleo.user_id)
    (line,) = [line for line in world.journal if line[0] == "live"]
    assert line[2][3] == "Ada banned you from the room for good"
    world.clock.at = NOW + timedelta(days=3650)
    assert await refusal(world.service.join(world.cleo, world.id)) == (
        403,
        "banned",
        "you are banned from this room",
    )
    world.journal.clear()
    await moderation.unban(world.bob, world.id, world.cleo.user_id)
    assert world.journal == [("stored", "delete_restriction"), ("logged", "unbanned")]
    await world.service.join(world.cleo, world.id)
    status, code, _ = await refusal(moderation.unban(world.bob, world.id, world.cleo.user_id))
    assert (status, code) == (404, "not-found")
    kinds = [(kind, payload["by"]) for kind, _, payload in await world.events()]
    assert kinds == [("banned", str(world.ada.user_id)), ("unbanned", str(world.bob.user_id))]


async def test_a_ban_may_come_before_a_visit(world: World) -> None:
    stranger = Principal(uuid4(), "Eve")
    ban = await world.service.moderation.ban(world.bob, world.id, stranger.user_id)
    assert ban.user_name is None
    ((_, _, payload),) = await world.events()
    assert (payload["removed"], payload["sessions"]) == (False, 0)
    assert (await refusal(world.service.join(stranger, world.id)))[:2] == (403, "banned")


async def test_banning_again_replaces_the_terms(world: World) -> None:
    moderation = world.service.moderation
    cleo = world.cleo.user_id
    await moderation.ban(world.bob, world.id, cleo, reason="one", expires_in=timedelta(hours=1))
    world.clock.at = NOW + timedelta(minutes=5)
    await moderation.ban(world.ada, world.id, cleo, reason="two")
    (ban,) = await moderation.bans(world.ada, world.id)
    assert (ban.reason, ban.expires_at, ban.created_by) == ("two", None, world.ada.user_id)
    assert ban.user_name == "Cleo"  # kept from the first ban, which removed her
    world.clock.at = NOW + timedelta(days=1)  # the first ban's hour is long gone
    assert (await refusal(world.service.join(world.cleo, world.id)))[1] == "banned"


async def test_the_ban_list_is_for_the_owner_moderators_and_admins(world: World) -> None:
    moderation = world.service.moderation
    eve = uuid4()
    await moderation.ban(world.ada, world.id, world.cleo.user_id, expires_in=timedelta(hours=1))
    world.clock.at = NOW + timedelta(minutes=1)
    await moderation.ban(world.bob, world.id, eve)
    for caller in (world.ada, world.bob, ADMIN):
        listed = await moderation.bans(caller, world.id)
        assert [b.user_id for b in listed] == [eve, world.cleo.user_id]  # newest first
    for caller in (world.dan, world.cleo, Principal(uuid4(), "Zed")):  # member, banned, stranger
        status, code, _ = await refusal(moderation.bans(caller, world.id))
        assert (status, code) == FORBIDDEN
    world.clock.at = NOW + timedelta(hours=1)  # Cleo's ban has run out
    assert [b.user_id for b in await moderation.bans(world.ada, world.id)] == [eve]


async def test_who_may_ban_whom(world: World) -> None:
    moderation = world.service.moderation
    assert await refusal(moderation.ban(world.bob, world.id, world.ada.user_id)) == (
        OWNER_UNTOUCHABLE
    )
    assert await refusal(moderation.ban(world.bob, world.id, world.bea.user_id)) == (
        NOT_ON_MODERATORS
    )
    status, code, _ = await refusal(moderation.ban(world.cleo, world.id, world.dan.user_id))
    assert (status, code) == FORBIDDEN
    status, code, _ = await refusal(moderation.ban(world.ada, world.id, world.ada.user_id))
    assert (status, code) == (422, "validation-failed")
    status, code, _ = await refusal(moderation.unban(world.cleo, world.id, world.dan.user_id))
    assert (status, code) == FORBIDDEN
    assert world.journal == []
    # The owner who left is still the owner: out of reach.
    await world.service.leave(world.ada, world.id)
    assert await refusal(moderation.ban(ADMIN, world.id, world.ada.user_id)) == OWNER_UNTOUCHABLE
    await world.allow_moderators_on_moderators()
    await moderation.ban(world.bob, world.id, world.bea.user_id)
    assert await world.role(world.bea) is None


# -- mutes -------------------------------------------------------------------------------
async def test_a_mute_stops_chat_until_unmuted(world: World) -> None:
    moderation = world.service.moderation
    mute = await moderation.mute(world.bob, world.id, world.cleo.user_id, reason="caps")
    assert (mute.user_name, mute.reason, mute.expires_at) == ("Cleo", "caps", None)
    assert world.journal == [
        ("stored", "set_restriction"),
        ("logged", "muted"),
        ("live", "mute_changed", (world.id, world.cleo.user_id, True)),
    ]
    assert await refusal(world.service.post_chat(world.cleo, world.id, "HELLO")) == (
        403,
        "muted",
        "you are muted in this room: caps",
    )
    people = await world.service.participants(world.dan, world.id)
    assert {p.user_name: p.muted for p in people} == {
        "Ada": False,
        "Bob": False,
        "Bea": False,
        "Cleo": True,
        "Dan": False,
    }
    assert await world.role(world.cleo) is Role.MEMBER  # muted, still in the room
    world.journal.clear()
    await moderation.unmute(world.bob, world.id, world.cleo.user_id)
    assert world.journal == [
        ("stored", "delete_restriction"),
        ("logged", "unmuted"),
        ("live", "mute_changed", (world.id, world.cleo.user_id, False)),
    ]
    await world.service.post_chat(world.cleo, world.id, "hello")
    status, code, _ = await refusal(moderation.unmute(world.bob, world.id, world.cleo.user_id))
    assert (status, code) == (404, "not-found")
    by = str(world.bob.user_id)
    assert await world.events() == [
        ("muted", world.cleo.user_id, {"by": by, "reason": "caps", "expires_at": None}),
        ("unmuted", world.cleo.user_id, {"by": by}),
    ]


async def test_a_mute_runs_out(world: World) -> None:
    moderation = world.service.moderation
    mute = await moderation.mute(
        world.ada, world.id, world.cleo.user_id, expires_in=timedelta(minutes=10)
    )
    assert mute.expires_at == NOW + timedelta(minutes=10)
    _, code, detail = await refusal(world.service.post_chat(world.cleo, world.id, "hi"))
    assert (code, detail) == ("muted", "you are muted in this room until 2026-12-05T12:10:00Z")
    world.clock.at = NOW + timedelta(minutes=10)
    assert not await moderation.is_muted(world.id, world.cleo.user_id)
    await world.service.post_chat(world.cleo, world.id, "hi")
    people = await world.service.participants(world.cleo, world.id)
    assert not any(p.muted for p in people)


async def test_lifting_a_ban_or_mute_that_ran_out_is_not_found_and_tells_nobody(
    world: World,
) -> None:
    moderation = world.service.moderation
    cleo, dan = world.cleo.user_id, world.dan.user_id
    await moderation.mute(world.ada, world.id, cleo, expires_in=timedelta(minutes=10))
    await moderation.ban(world.ada, world.id, dan, expires_in=timedelta(minutes=10))
    world.clock.at = NOW + timedelta(minutes=10)
    journal, events = len(world.journal), len(await world.events())
    for lift, what in ((moderation.unmute, "mute"), (moderation.unban, "ban")):
        with pytest.raises(ServiceError) as missing:
            await lift(world.ada, world.id, cleo if what == "mute" else dan)
        assert (missing.value.status, missing.value.code) == (404, "not-found"), what
    # No "unmuted" to the live room (it ended the mute by itself), no event logged.
    assert world.journal[journal:] == [("stored", "delete_restriction")] * 2
    assert len(await world.events()) == events
    # The rows that ran out are gone as well.
    assert await world.repo.get_restriction(world.id, cleo, RestrictionKind.MUTE) is None
    assert await world.repo.get_restriction(world.id, dan, RestrictionKind.BAN) is None


async def test_a_mute_outlives_leaving_and_joining(world: World) -> None:
    await world.service.moderation.mute(world.ada, world.id, world.cleo.user_id)
    await world.service.leave(world.cleo, world.id)
    await world.service.join(world.cleo, world.id)
    assert (await refusal(world.service.post_chat(world.cleo, world.id, "back")))[1] == "muted"


async def test_who_may_mute_whom(world: World) -> None:
    moderation = world.service.moderation
    assert await refusal(moderation.mute(ADMIN, world.id, world.ada.user_id)) == OWNER_UNTOUCHABLE
    assert await refusal(moderation.mute(world.bob, world.id, world.bea.user_id)) == (
        NOT_ON_MODERATORS
    )
    status, code, _ = await refusal(moderation.mute(world.cleo, world.id, world.dan.user_id))
    assert (status, code) == FORBIDDEN
    status, code, _ = await refusal(moderation.mute(world.bob, world.id, uuid4()))
    assert (status, code) == NOT_A_MEMBER  # unlike a ban, a mute needs a member
    status, code, _ = await refusal(moderation.mute(world.bob, world.id, world.bob.user_id))
    assert (status, code) == (422, "validation-failed")
    assert world.journal == []
    await world.allow_moderators_on_moderators()
    await moderation.mute(world.bob, world.id, world.bea.user_id)
    assert (await refusal(world.service.post_chat(world.bea, world.id, "hm")))[1] == "muted"


# -- chat deletion -----------------------------------------------------------------------
async def post(world: World, who: Principal, text: str = "hi") -> ChatMessage:
    message = await world.service.post_chat(who, world.id, text)
    world.journal.clear()
    return message


async def test_the_author_deletes_their_own_message(world: World) -> None:
    message = await post(world, world.cleo)
    deleted = await world.service.moderation.delete_chat(world.cleo, message.id, room_id=world.id)
    assert deleted.id == message.id
    assert await world.repo.get_chat_message(message.id) is None
    assert world.journal == [
        ("stored", "delete_chat_message"),
        ("logged", "chat_deleted"),
        ("live", "chat_deleted", (world.id, message.id)),
    ]
    by = str(world.cleo.user_id)
    assert await world.events() == [
        (
            "chat_deleted",
            world.cleo.user_id,
            {"by": by, "message_id": str(message.id), "author": by},
        )
    ]


@pytest.mark.parametrize(
    ("deleter", "author", "allowed"),
    [
        ("bob", "cleo", True),  # a moderator, a member's message
        ("ada", "bob", True),  # the owner, a moderator's message
        ("bob", "ada", False),  # never the owner's
        ("bob", "bea", False),  # not another moderator's, in this room
        ("cleo", "dan", False),  # a member, someone else's
    ],
)
async def test_who_deletes_whose_message(
    world: World, deleter: str, author: str, allowed: bool
) -> None:
    message = await post(world, getattr(world, author))
    call = world.service.moderation.delete_chat(getattr(world, deleter), message.id)
    if allowed:
        await call
        assert await world.repo.get_chat_message(message.id) is None
        (_, _, payload), *_ = await world.events()
        assert payload["by"] == str(getattr(world, deleter).user_id)
    else:
        status, code, _ = await refusal(call)
        assert (status, code) == FORBIDDEN
        assert await world.repo.get_chat_message(message.id) is not None
        assert world.journal == []


async def test_moderators_delete_moderators_messages_when_the_room_allows(world: World) -> None:
    owners = await post(world, world.ada)
    beas = await post(world, world.bea)
    await world.allow_moderators_on_moderators()
    await world.service.moderation.delete_chat(world.bob, beas.id)
    assert await refusal(world.service.moderation.delete_chat(world.bob, owners.id)) == (
        NOT_ON_THE_OWNER
    )


async def test_deleting_a_message_that_is_not_there(world: World) -> None:
    message = await post(world, world.cleo)
    elsewhere = await world.service.create_room(
        world.ada, name="other", content_type="movie", content_id="2", is_public=True,
        password=None, max_participants=None,
    )  # fmt: skip
    for call in (
        world.service.moderation.delete_chat(ADMIN, uuid4()),
        world.service.moderation.delete_chat(world.cleo, message.id, room_id=elsewhere.id),
    ):
        status, code, _ = await refusal(call)
        assert (status, code) == (404, "not-found")
    await world.service.moderation.delete_chat(ADMIN, message.id)  # any room, any author
    status, code, _ = await refusal(world.service.moderation.delete_chat(ADMIN, message.id))
    assert (status, code) == (404, "not-found")


async def test_refusals_store_nothing_and_tell_no_one(world: World) -> None:
    moderation = world.service.moderation
    cleo = world.cleo.user_id
    refused = [
        moderation.set_role(world.dan, world.id, cleo, Role.MODERATOR),
        moderation.transfer(world.dan, world.id, cleo),
        moderation.kick(world.dan, world.id, cleo),
        moderation.ban(world.dan, world.id, cleo),
        moderation.unban(world.dan, world.id, cleo),
        moderation.mute(world.dan, world.id, cleo),
        moderation.unmute(world.dan, world.id, cleo),
    ]
    for call in refused:
        status, code, _ = await refusal(call)
        assert (status, code) == FORBIDDEN
    assert world.journal == []
    assert await world.events() == []


async def test_a_ban_made_while_the_user_joins_still_keeps_them_out(world: World) -> None:
    # Eve passes the first ban check; the ban is stored (and finds no membership to
    # remove) before her membership is: the join must not leave her in.
    eve = Principal(uuid4(), "Eve")
    store = world.repo.add_participant

    async def ban_first(*args: Any, **kwargs: Any) -> Any:
        await world.service.moderation.ban(world.ada, world.id, eve.user_id)
        return await store(*args, **kwargs)

    world.repo.add_participant = ban_first  # type: ignore[method-assign]
    assert (await refusal(world.service.join(eve, world.id)))[:2] == (403, "banned")
    assert await world.repo.get_participant(world.id, eve.user_id) is None
