"""Who may do what in a room: the permission rules, as pure functions.

Theory of operation: a caller is described by whether they are an admin and
their membership of the room (``None`` when not a member). Every rule here
decides from those facts and the room's own settings; the service looks the
facts up and turns a refusal into an error. Keeping the rules in one place
makes the permission matrix reviewable (and testable) on one screen.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from syncplayd.core.roles import Role


@dataclass(frozen=True, slots=True)
class Caller:
    """The facts about a caller that permissions depend on."""

    is_admin: bool
    role: Role | None  # None: not a participant of the room
    is_owner: bool  # the room's owner_id, even after leaving the room

    @property
    def is_member(self) -> bool:
        return self.role is not None


def can_view(caller: Caller, *, is_public: bool) -> bool:
    """Details, participants and chat of private rooms are for members only."""
    return is_public or caller.is_member or caller.is_owner or caller.is_admin


def can_manage(caller: Caller) -> bool:
    """Updating settings and ending a room belong to its owner (and admins)."""
    return caller.is_owner or caller.is_admin


def can_invite(caller: Caller) -> bool:
    """Owners, moderators and admins hand out invitations."""
    return caller.is_owner or caller.is_admin or caller.role in (Role.OWNER, Role.MODERATOR)


def can_remove_member(caller: Caller) -> bool:
    """Removing someone else from a room (a kick) is for administrators."""
    return caller.is_admin


def can_delete_chat(caller: Caller) -> bool:
    """Deleting a chat message is for administrators."""
    return caller.is_admin


def can_audit(caller: Caller) -> bool:
    """The event log, the whole chat history and every invitation are for administrators."""
    return caller.is_admin


class JoinCheck(enum.Enum):
    """What a non-member must present to join."""

    NOTHING = "nothing"
    INVITATION = "invitation"  # private room without a password: an invitation only
    PASSWORD = "password"  # noqa: S105 - a requirement, not a secret; a room with a password: the password or an invitation


def join_requirement(caller: Caller, *, is_public: bool, has_password: bool) -> JoinCheck:
    """Decide what ``caller`` needs to join; owners, admins and members need nothing.

    A password is a shared secret that stands in for an invitation, so a private
    room with a password admits whoever has its link and its password.
    """
    if caller.is_owner or caller.is_admin or caller.is_member:
        return JoinCheck.NOTHING
    if has_password:
        return JoinCheck.PASSWORD
    if not is_public:
        return JoinCheck.INVITATION
    return JoinCheck.NOTHING


def role_on_join(caller: Caller) -> Role:
    """The owner always comes back as owner; everyone else starts as a member."""
    return Role.OWNER if caller.is_owner else Role.MEMBER
