"""``syncplayctl chat``: a room's chat history; delete a message."""

from __future__ import annotations

from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl.context import LIMIT, OFFSET, ROOM, CtlContext, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_page, when


@click.group(cls=CtlGroup)
def chat() -> None:
    """Read a room's chat history, or delete a message."""


@chat.command("history")
@ROOM
@LIMIT
@OFFSET
@pass_ctl
def chat_history(ctl: CtlContext, room_id: UUID | ids.Prefix, limit: int, offset: int) -> None:
    """Show a room's chat, newest first (ID is what chat delete takes)."""
    page = ctl.client().chat_history(ctl.room(room_id), limit=limit, offset=offset)
    columns: list[Column] = [
        ("ID", lambda m: m["id"]),
        ("TIME", lambda m: when(m["created_at"])),
        ("USER", lambda m: cell(m["user_name"], width=20)),
        ("MESSAGE", lambda m: cell(m["message"])),
    ]
    ctl.emit(page, lambda p: echo_page(p, columns, "messages"))


@chat.command("delete")
@click.argument("message_id", metavar="MESSAGE", type=click.UUID)
@pass_ctl
def chat_delete(ctl: CtlContext, message_id: UUID) -> None:
    """Delete a chat message; the room's connected members see it disappear."""
    result = ctl.client().delete_chat(message_id)
    ctl.emit(result, lambda r: click.echo(f"deleted message {r['id']}"))
