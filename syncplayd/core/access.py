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


def can_audit(caller: Caller) -> bool:
    """The event log, the whole chat history and every invitation are for administrators."""
    return caller.is_admin


class Action(enum.StrEnum):
    """What one person in a room may do to another."""

    PROMOTE = "promote"  # a member becomes a moderator
    DEMOTE = "demote"  # a moderator becomes a member
    TRANSFER = "transfer"  # the room gets a new owner
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    DELETE_CHAT = "delete_chat"  # someone else's message; one's own is always allowed


#: Who may take each action against someone else in the room: the one table of
#: moderation rights (docs/api.md shows it). Administrators may take them all.
ACTORS: dict[Action, frozenset[Role]] = {
    Action.PROMOTE: frozenset({Role.OWNER}),
    Action.DEMOTE: frozenset({Role.OWNER}),
    Action.TRANSFER: frozenset({Role.OWNER}),
    **{
        action: frozenset({Role.OWNER, Role.MODERATOR})
        for action in (
            Action.KICK,
            Action.BAN,
            Action.UNBAN,
            Action.MUTE,
            Action.UNMUTE,
            Action.DELETE_CHAT,
        )
    },
}

#: Actions nobody takes against the room's owner, administrators included: an owner
#: cannot be locked out of or silenced in their own room (end the room, or have it
#: transferred, instead). PROMOTE is here because "promoting" the owner to moderator
#: would in fact demote them (their participation would say moderator while
#: ``owner_id`` still names them).
_NEVER_ON_OWNER = frozenset({Action.PROMOTE, Action.DEMOTE, Action.BAN, Action.MUTE})


def rank(caller: Caller) -> Role | None:
    """The caller's standing in the room: the owner by ``owner_id``, else their role."""
    return Role.OWNER if caller.is_owner else caller.role


def moderation_refusal(
    caller: Caller, action: Action, target: Role | None, *, moderators_manage_moderators: bool
) -> str | None:
    """Why ``caller`` may not take ``action`` against someone of rank ``target``, or ``None``.

    ``target`` is the other person's rank in the room (``None``: not a member, as
    for a ban made before someone joins or lifted after they were removed). The
    rules, in order: the owner is out of reach of role changes, bans and mutes; admins
    may do the rest; otherwise the caller's rank must be in :data:`ACTORS`, and a
    moderator acts on members only, on other moderators when the room allows it,
    never on the owner.
    """
    if target is Role.OWNER and action in _NEVER_ON_OWNER:
        return "nobody can do that to the room's owner"
    if caller.is_admin:
        return None
    mine = rank(caller)
    if mine not in ACTORS[action]:
        if ACTORS[action] == {Role.OWNER}:
            return "only the room's owner can do that"
        return "only the room's owner and moderators can do that"
    if mine is Role.MODERATOR:
        if target is Role.OWNER:
            return "moderators cannot act on the room's owner"
        if target is Role.MODERATOR and not moderators_manage_moderators:
            return "moderators cannot act on other moderators in this room"
    return None


def can_control_playback(caller: Caller, *, moderators_only: bool) -> bool:
    """Playing, pausing, seeking and changing the queue: the owner and admins always; in a
    ``moderators`` room its moderators too; otherwise every member.

    The same rule as the engine's for sockets already in the room
    (``core.room``: a plain member of a moderators-only room gets ``not-allowed``).
    """
    if caller.is_admin or caller.is_owner:
        return True
    if moderators_only:
        return caller.role in (Role.OWNER, Role.MODERATOR)
    return caller.is_member


def can_list_bans(caller: Caller) -> bool:
    """The ban list is for whoever may ban: the owner, moderators and admins."""
    return caller.is_admin or rank(caller) in ACTORS[Action.BAN]


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
