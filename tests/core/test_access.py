"""The permission matrix, one row per (caller, room) case."""

from __future__ import annotations

import pytest

from syncplayd.core.access import (
    Caller,
    JoinCheck,
    can_audit,
    can_delete_chat,
    can_invite,
    can_manage,
    can_remove_member,
    can_view,
    join_requirement,
    role_on_join,
)
from syncplayd.core.roles import Role

STRANGER = Caller(is_admin=False, role=None, is_owner=False)
MEMBER = Caller(is_admin=False, role=Role.MEMBER, is_owner=False)
MODERATOR = Caller(is_admin=False, role=Role.MODERATOR, is_owner=False)
OWNER = Caller(is_admin=False, role=Role.OWNER, is_owner=True)
OWNER_WHO_LEFT = Caller(is_admin=False, role=None, is_owner=True)
ADMIN = Caller(is_admin=True, role=None, is_owner=False)


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
    ("caller", "manage", "invite"),
    [
        (STRANGER, False, False),
        (MEMBER, False, False),
        (MODERATOR, False, True),
        (OWNER, True, True),
        (OWNER_WHO_LEFT, True, True),
        (ADMIN, True, True),
    ],
)
def test_manage_and_invite(caller: Caller, manage: bool, invite: bool) -> None:
    assert can_manage(caller) is manage
    assert can_invite(caller) is invite


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
    ("caller", "allowed"),
    [
        (STRANGER, False),
        (MEMBER, False),
        (MODERATOR, False),
        (OWNER, False),
        (OWNER_WHO_LEFT, False),
        (ADMIN, True),
    ],
)
def test_removing_members_deleting_chat_and_auditing_are_for_admins(
    caller: Caller, allowed: bool
) -> None:
    assert can_remove_member(caller) is allowed
    assert can_delete_chat(caller) is allowed
    assert can_audit(caller) is allowed
