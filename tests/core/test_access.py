"""The permission matrix, one row per (caller, room) case."""

from __future__ import annotations

import pytest

from syncplayd.core.access import (
    ACTORS,
    Action,
    Caller,
    JoinCheck,
    can_audit,
    can_control_playback,
    can_invite,
    can_list_bans,
    can_manage,
    can_view,
    join_requirement,
    moderation_refusal,
    rank,
    role_on_join,
)
from syncplayd.core.roles import Role

STRANGER = Caller(is_admin=False, role=None, is_owner=False)
MEMBER = Caller(is_admin=False, role=Role.MEMBER, is_owner=False)
MODERATOR = Caller(is_admin=False, role=Role.MODERATOR, is_owner=False)
OWNER = Caller(is_admin=False, role=Role.OWNER, is_owner=True)
OWNER_WHO_LEFT = Caller(is_admin=False, role=None, is_owner=True)
ADMIN = Caller(is_admin=True, role=None, is_owner=False)

CALLERS = {
    "stranger": STRANGER,
    "member": MEMBER,
    "moderator": MODERATOR,
    "owner": OWNER,
    "owner-who-left": OWNER_WHO_LEFT,
    "admin": ADMIN,
}


@pytest.mark.parametrize(
    ("caller", "public", "private"),
    [
        (STRANGER, True, False),
        (MEMBER, True, True),
        (MODERATOR, True, True),
        (OWNER, True, True),
        (OWNER_WHO_LEFT, True, True),
        (ADMIN, True, True),
    ],
)
def test_view(caller: Caller, public: bool, private: bool) -> None:
    assert can_view(caller, is_public=True) is public
    assert can_view(caller, is_public=False) is private


@pytest.mark.parametrize(
    ("caller", "everyone_room", "moderators_room"),
    [
        (STRANGER, False, False),
        (MEMBER, True, False),
        (MODERATOR, True, True),
        (OWNER, True, True),
        (OWNER_WHO_LEFT, True, True),
        (ADMIN, True, True),
    ],
)
def test_control_playback(caller: Caller, everyone_room: bool, moderators_room: bool) -> None:
    assert can_control_playback(caller, moderators_only=False) is everyone_room
    assert can_control_playback(caller, moderators_only=True) is moderators_room


@pytest.mark.parametrize(
    ("caller", "manage", "invite", "list_bans", "audit"),
    [
        (STRANGER, False, False, False, False),
        (MEMBER, False, False, False, False),
        (MODERATOR, False, True, True, False),
        (OWNER, True, True, True, False),
        (OWNER_WHO_LEFT, True, True, True, False),
        (ADMIN, True, True, True, True),
    ],
)
def test_manage_invite_list_bans_and_audit(
    caller: Caller, manage: bool, invite: bool, list_bans: bool, audit: bool
) -> None:
    assert can_manage(caller) is manage
    assert can_invite(caller) is invite
    assert can_list_bans(caller) is list_bans
    assert can_audit(caller) is audit


@pytest.mark.parametrize(
    ("caller", "is_public", "has_password", "expected"),
    [
        (STRANGER, True, False, JoinCheck.NOTHING),
        (STRANGER, True, True, JoinCheck.PASSWORD),
        (STRANGER, False, False, JoinCheck.INVITATION),
        (STRANGER, False, True, JoinCheck.PASSWORD),
        (OWNER_WHO_LEFT, False, True, JoinCheck.NOTHING),
        (ADMIN, False, False, JoinCheck.NOTHING),
        (ADMIN, True, True, JoinCheck.NOTHING),
        (MEMBER, False, True, JoinCheck.NOTHING),
    ],
)
def test_join_requirement(
    caller: Caller, is_public: bool, has_password: bool, expected: JoinCheck
) -> None:
    assert join_requirement(caller, is_public=is_public, has_password=has_password) is expected


def test_owner_rejoins_as_owner() -> None:
    assert role_on_join(OWNER_WHO_LEFT) is Role.OWNER
    assert role_on_join(STRANGER) is Role.MEMBER
    assert role_on_join(ADMIN) is Role.MEMBER


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        (STRANGER, None),
        (MEMBER, Role.MEMBER),
        (MODERATOR, Role.MODERATOR),
        (OWNER, Role.OWNER),
        (OWNER_WHO_LEFT, Role.OWNER),  # owner_id, not the membership, makes the owner
        (ADMIN, None),  # being an admin is not a rank in the room
    ],
)
def test_rank(caller: Caller, expected: Role | None) -> None:
    assert rank(caller) is expected


def test_actors_is_the_documented_table() -> None:
    """docs/api.md shows this table; a change here is a change of the public rules."""
    owner, staff = {Role.OWNER}, {Role.OWNER, Role.MODERATOR}
    assert {
        Action.PROMOTE: owner,
        Action.DEMOTE: owner,
        Action.TRANSFER: owner,
        Action.KICK: staff,
        Action.BAN: staff,
        Action.UNBAN: staff,
        Action.MUTE: staff,
        Action.UNMUTE: staff,
        Action.DELETE_CHAT: staff,
    } == ACTORS


# -- moderation_refusal: every caller x action x target -----------------------------
#
# Cells: "ok" allowed; "mods?" allowed only when the room's moderators_manage_moderators
# is true; any other cell names the refusal below. The target is the other person's rank
# in the room ("none": not a member, as for a ban made before a visit). Acting on
# oneself (owner on owner) is the service's 422 and is not decided here.
REFUSALS = {
    "owner-only": "only the room's owner can do that",
    "staff-only": "only the room's owner and moderators can do that",
    "never": "nobody can do that to the room's owner",
    "not-owner": "moderators cannot act on the room's owner",
}
MODERATOR_ON_MODERATOR = "moderators cannot act on other moderators in this room"

MATRIX = """
action       caller          none        member      moderator   owner
promote      owner           ok          ok          ok          never
promote      owner-who-left  ok          ok          ok          never
promote      admin           ok          ok          ok          never
promote      moderator       owner-only  owner-only  owner-only  never
promote      member          owner-only  owner-only  owner-only  never
promote      stranger        owner-only  owner-only  owner-only  never
demote       owner           ok          ok          ok          never
demote       owner-who-left  ok          ok          ok          never
demote       admin           ok          ok          ok          never
demote       moderator       owner-only  owner-only  owner-only  never
demote       member          owner-only  owner-only  owner-only  never
demote       stranger        owner-only  owner-only  owner-only  never
transfer     owner           ok          ok          ok          ok
transfer     owner-who-left  ok          ok          ok          ok
transfer     admin           ok          ok          ok          ok
transfer     moderator       owner-only  owner-only  owner-only  owner-only
transfer     member          owner-only  owner-only  owner-only  owner-only
transfer     stranger        owner-only  owner-only  owner-only  owner-only
kick         owner           ok          ok          ok          ok
kick         owner-who-left  ok          ok          ok          ok
kick         admin           ok          ok          ok          ok
kick         moderator       ok          ok          mods?       not-owner
kick         member          staff-only  staff-only  staff-only  staff-only
kick         stranger        staff-only  staff-only  staff-only  staff-only
ban          owner           ok          ok          ok          never
ban          owner-who-left  ok          ok          ok          never
ban          admin           ok          ok          ok          never
ban          moderator       ok          ok          mods?       never
ban          member          staff-only  staff-only  staff-only  never
ban          stranger        staff-only  staff-only  staff-only  never
unban        owner           ok          ok          ok          ok
unban        owner-who-left  ok          ok          ok          ok
unban        admin           ok          ok          ok          ok
unban        moderator       ok          ok          mods?       not-owner
unban        member          staff-only  staff-only  staff-only  staff-only
unban        stranger        staff-only  staff-only  staff-only  staff-only
mute         owner           ok          ok          ok          never
mute         owner-who-left  ok          ok          ok          never
mute         admin           ok          ok          ok          never
mute         moderator       ok          ok          mods?       never
mute         member          staff-only  staff-only  staff-only  never
mute         stranger        staff-only  staff-only  staff-only  never
unmute       owner           ok          ok          ok          ok
unmute       owner-who-left  ok          ok          ok          ok
unmute       admin           ok          ok          ok          ok
unmute       moderator       ok          ok          mods?       not-owner
unmute       member          staff-only  staff-only  staff-only  staff-only
unmute       stranger        staff-only  staff-only  staff-only  staff-only
delete_chat  owner           ok          ok          ok          ok
delete_chat  owner-who-left  ok          ok          ok          ok
delete_chat  admin           ok          ok          ok          ok
delete_chat  moderator       ok          ok          mods?       not-owner
delete_chat  member          staff-only  staff-only  staff-only  staff-only
delete_chat  stranger        staff-only  staff-only  staff-only  staff-only
"""

TARGETS: dict[str, Role | None] = {
    "none": None,
    "member": Role.MEMBER,
    "moderator": Role.MODERATOR,
    "owner": Role.OWNER,
}


def _cells() -> list[tuple[Action, str, str, str]]:
    header, *rows = (line.split() for line in MATRIX.strip().splitlines())
    targets = header[2:]
    assert targets == list(TARGETS)
    return [
        (Action(action), caller, target, cell)
        for action, caller, *cells in rows
        for target, cell in zip(targets, cells, strict=True)
    ]


CELLS = _cells()


def test_the_matrix_covers_every_action_caller_and_target_once() -> None:
    seen = [(action, caller, target) for action, caller, target, _ in CELLS]
    assert len(seen) == len(set(seen)) == len(Action) * len(CALLERS) * len(TARGETS)


@pytest.mark.parametrize("manage_moderators", [False, True])
@pytest.mark.parametrize(("action", "caller", "target", "cell"), CELLS)
def test_moderation_refusal(
    action: Action, caller: str, target: str, cell: str, manage_moderators: bool
) -> None:
    if cell == "ok":
        expected = None
    elif cell == "mods?":
        expected = None if manage_moderators else MODERATOR_ON_MODERATOR
    else:
        expected = REFUSALS[cell]
    refusal = moderation_refusal(
        CALLERS[caller], action, TARGETS[target], moderators_manage_moderators=manage_moderators
    )
    assert refusal == expected
