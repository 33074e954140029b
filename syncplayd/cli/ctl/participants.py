"""``syncplayctl participants``: list a room's participants, or kick one."""

from __future__ import annotations

from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl.context import ROOM, CtlContext, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_page, when


@click.group(cls=CtlGroup)
def participants() -> None:
    """List a room's participants, or kick one."""


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
        ("CONNECTED", lambda p: cell(p["is_connected"])),
        ("SESSIONS", lambda p: str(p.get("sessions", 0))),
        ("JOINED", lambda p: when(p["joined_at"])),
    ]
    ctl.emit(page, lambda p: echo_page(p, columns, "participants"))


@participants.command("kick")
@ROOM
@click.argument("user_id", metavar="USER", type=ids.IdOrPrefix("user"))
@pass_ctl
def participants_kick(
    ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix
) -> None:
    """Remove a participant; their live sessions are closed with reason "kicked".

    This is not a ban: the user can join again if the room lets them (public
    room, password, invitation).
    """
    rid = ctl.room(room_id)
    result = ctl.client().kick(rid, ctl.member(rid, user_id))
    ctl.emit(
        result,
        lambda r: click.echo(
            f"kicked {r['user_id']} from room {r['room_id']}"
            f" ({r['sessions_closed']} live sessions closed)"
        ),
    )
