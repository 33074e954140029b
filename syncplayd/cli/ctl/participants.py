"""``syncplayctl participants``: list a room's participants and moderate them.

Kick, ban, mute and the roles go through the same service methods as the owner's
and moderators' own requests: the daemon tells the live room at once (the person
is disconnected, sees their new role, or can no longer chat). The admin acts with
every right but one: nobody demotes, bans or mutes the room's owner.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl.context import ROOM, CtlContext, parse_duration, pass_ctl, who
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_page, when

F = TypeVar("F", bound=Callable[..., Any])

#: The bounds of a ban's or a mute's ``expires_in_minutes`` in the admin API.
SHORTEST_SANCTION = timedelta(minutes=1)
LONGEST_SANCTION = timedelta(minutes=5_256_000)  # ten years


@click.group(cls=CtlGroup)
def participants() -> None:
    """List a room's participants; kick, ban, mute, promote or demote one."""


USER = click.argument("user_id", metavar="USER", type=ids.IdOrPrefix("user"))
_REASON = click.option(
    "--reason", metavar="TEXT", help="Why (at most 500 characters): the person is shown it."
)


def _sanction_length(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> timedelta | None:
    if value is None:
        return None
    return parse_duration(value, shortest=SHORTEST_SANCTION, longest=LONGEST_SANCTION)


def _for(what: str) -> Callable[[F], F]:
    return click.option(
        "--for",
        "length",
        metavar="DURATION",
        callback=_sanction_length,
        help=f"How long the {what} lasts: 30m, 2h, 7d (at most 3650d) [default: until lifted].",
    )


def _minutes(length: timedelta | None) -> float | None:
    return None if length is None else length.total_seconds() / 60


@participants.command("list")
@ROOM
@click.option("--connected", is_flag=True, help="Only participants with a live connection.")
@pass_ctl
def participants_list(ctl: CtlContext, room_id: UUID | ids.Prefix, connected: bool) -> None:
    """List a room's participants in joining order (SESSIONS: live connections)."""
    page = ctl.client().participants(ctl.room(room_id), connected=connected)
    columns: list[Column] = [
        ("USER", lambda p: p["user_id"]),
        ("NAME", lambda p: cell(p["user_name"], width=30)),
        ("ROLE", lambda p: p["role"]),
        ("MUTED", lambda p: cell(p.get("muted", False))),
        ("CONNECTED", lambda p: cell(p["is_connected"])),
        ("SESSIONS", lambda p: str(p.get("sessions", 0))),
        ("JOINED", lambda p: when(p["joined_at"])),
    ]
    ctl.emit(page, lambda p: echo_page(p, columns, "participants"))


@participants.command("kick")
@ROOM
@USER
@_REASON
@pass_ctl
def participants_kick(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix, reason: str | None
) -> None:
    """Remove a participant; their live sessions are closed with reason "kicked".

    This is not a ban: the user can join again if the room lets them (public
    room, password, invitation). Use ban to keep them out.
    """
    rid = ctl.room(room_id)
    result = ctl.client().kick(rid, ctl.member(rid, user_id), reason=reason)
    ctl.emit(
        result,
        lambda r: click.echo(
            f"kicked {r['user_id']} from room {r['room_id']}"
            f" ({r['sessions_closed']} live sessions closed)"
        ),
    )


def _set_role(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix, role: str
) -> None:
    rid = ctl.room(room_id)
    person = ctl.client().set_role(rid, ctl.member(rid, user_id), role)
    ctl.emit(
        person,
        lambda p: click.echo(
            f"{cell(who(p['user_name'], p['user_id']), width=None)} is a {p['role']} of room {rid}"
        ),
    )


@participants.command("promote")
@ROOM
@USER
@pass_ctl
def participants_promote(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix
) -> None:
    """Make a participant a moderator of the room.

    Moderators may kick, ban and mute members and delete their chat. A moderator
    already stays one (nothing changes).
    """
    _set_role(ctl, room_id, user_id, "moderator")


@participants.command("demote")
@ROOM
@USER
@pass_ctl
def participants_demote(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix
) -> None:
    """Make a moderator a plain member again (the owner cannot be demoted)."""
    _set_role(ctl, room_id, user_id, "member")


def _terms(restriction: dict[str, Any]) -> str:
    """`` until …: reason`` or `` for good: reason``."""
    until = restriction.get("expires_at")
    text = f" until {when(until)} UTC" if until else " for good"
    reason = restriction.get("reason")
    return f"{text}: {cell(reason, width=None)}" if reason else text


@participants.command("ban")
@ROOM
@USER
@_REASON
@_for("ban")
@pass_ctl
def participants_ban(
    ctl: CtlContext,
    room_id: UUID | ids.Prefix,
    user_id: UUID | ids.Prefix,
    reason: str | None,
    length: timedelta | None,
) -> None:
    """Ban a user from the room: removed now, refused on every join until unbanned.

    USER need not be a participant: give a whole user id to ban someone before
    they come (a prefix is matched against the participants). Banning again
    replaces the reason and the expiry. The room's owner cannot be banned.
    """
    rid = ctl.room(room_id)
    ban = ctl.client().ban(
        rid, ctl.member(rid, user_id), reason=reason, expires_in_minutes=_minutes(length)
    )
    ctl.emit(
        ban,
        lambda b: click.echo(
            f"banned {cell(who(b['user_name'], b['user_id']), width=None)} from room {rid}"
            + _terms(b)
        ),
    )


@participants.command("unban")
@ROOM
@USER
@pass_ctl
def participants_unban(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix
) -> None:
    """Lift a ban: the user may join again.

    Only if the room lets them (public room, password, invitation): they are not
    added back. A USER prefix is matched against the room's bans (rooms bans).
    """
    rid = ctl.room(room_id)
    uid = ctl.banned(rid, user_id)
    result = ctl.client().unban(rid, uid)
    ctl.emit(result, lambda _: click.echo(f"unbanned {uid} from room {rid}"))


@participants.command("mute")
@ROOM
@USER
@_REASON
@_for("mute")
@pass_ctl
def participants_mute(
    ctl: CtlContext,
    room_id: UUID | ids.Prefix,
    user_id: UUID | ids.Prefix,
    reason: str | None,
    length: timedelta | None,
) -> None:
    """Keep a participant from posting chat; they stay in the room and watch.

    The mute outlasts leaving and joining again. Muting again replaces the
    reason and the expiry. The room's owner cannot be muted.
    """
    rid = ctl.room(room_id)
    mute = ctl.client().mute(
        rid, ctl.member(rid, user_id), reason=reason, expires_in_minutes=_minutes(length)
    )
    ctl.emit(
        mute,
        lambda m: click.echo(
            f"muted {cell(who(m['user_name'], m['user_id']), width=None)} in room {rid}" + _terms(m)
        ),
    )


@participants.command("unmute")
@ROOM
@USER
@pass_ctl
def participants_unmute(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix
) -> None:
    """Let a muted participant post chat again."""
    rid = ctl.room(room_id)
    uid = ctl.member(rid, user_id)
    result = ctl.client().unmute(rid, uid)
    ctl.emit(result, lambda _: click.echo(f"unmuted {uid} in room {rid}"))
