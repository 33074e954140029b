"""``syncplayctl invitations``: create, list, inspect and revoke invitation codes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl.context import (
    LIMIT,
    OFFSET,
    ROOM,
    CtlContext,
    creator,
    echo_link,
    pass_ctl,
)
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_json, echo_page, fields, when


@click.group(cls=CtlGroup)
def invitations() -> None:
    """Create, list, inspect and revoke invitation codes."""


def _print_invitation(invitation: dict[str, Any]) -> None:
    uses = invitation["max_uses"] if invitation["max_uses"] is not None else "unlimited"
    pairs: list[tuple[str, Any]] = [
        ("code", invitation["code"]),
        ("room", invitation["room_id"]),
        ("for user", invitation["invited_user_id"] or "anyone with the code"),
        ("uses", f"{invitation['use_count']} of {uses}"),
        ("expires", when(invitation["expires_at"])),
        ("expired", invitation.get("expired")),
        ("used up", invitation.get("used_up")),
        ("created", when(invitation["created_at"])),
        ("created by", creator(invitation)),
    ]
    room = invitation.get("room")
    if room:
        pairs.append(("room name", room["name"]))
        pairs.append(("room ended", when(room["ended_at"])))
    click.echo(fields(pairs))


@invitations.command("create")
@ROOM
@click.option("--user", "invited_user_id", type=click.UUID, help="Only this user may use it.")
@click.option(
    "--expires-in-hours",
    type=click.FloatRange(0, 720, min_open=True),
    help="Lifetime [default: syncplay.invitations.default_expiry_hours].",
)
@click.option("--max-uses", type=click.IntRange(1, 1000), help="Joins allowed [default: any].")
@pass_ctl
def invitations_create(
    ctl: CtlContext,
    room_id: UUID | ids.Prefix,
    invited_user_id: UUID | None,
    expires_in_hours: float | None,
    max_uses: int | None,
) -> None:
    """Create an invitation to a room; print its code and its watch link.

    The link (see --public-url) opens the watch page with the code filled in.
    """
    invitation = ctl.client().create_invitation(
        ctl.room(room_id),
        invited_user_id=invited_user_id,
        expires_in_hours=expires_in_hours,
        max_uses=max_uses,
    )
    if ctl.json:
        echo_json(invitation)
        return
    _print_invitation(invitation)
    echo_link(ctl.watch_base(), invite=invitation["code"])


def _state(invitation: dict[str, Any]) -> str:
    if invitation["expired"]:
        return "expired"
    return "used up" if invitation["used_up"] else "live"


@invitations.command("list")
@click.argument("room_id", metavar="[ROOM]", required=False, type=ids.IdOrPrefix("room"))
@LIMIT
@OFFSET
@pass_ctl
def invitations_list(
    ctl: CtlContext, room_id: UUID | ids.Prefix | None, limit: int, offset: int
) -> None:
    """List a room's invitations (every room's without ROOM), newest first.

    Expired and used-up ones are listed too (STATE) until they are purged.
    """
    rid = ctl.room(room_id) if room_id is not None else None
    page = ctl.client().list_invitations(rid, limit=limit, offset=offset)
    columns: list[Column] = [
        ("CODE", lambda i: i["code"]),
        *([("ROOM", lambda i: i["room_id"])] if rid is None else []),
        ("STATE", _state),
        ("USES", lambda i: f"{i['use_count']}/{i['max_uses'] or 'any'}"),
        ("FOR", lambda i: i["invited_user_id"] or "anyone"),
        ("EXPIRES", lambda i: when(i["expires_at"])),
        ("CREATED BY", lambda i: cell(creator(i, short=True), width=30)),
    ]
    ctl.emit(page, lambda p: echo_page(p, columns, "invitations"))


@invitations.command("show")
@click.argument("code")
@pass_ctl
def invitations_show(ctl: CtlContext, code: str) -> None:
    """Show an invitation, including expired and used-up ones.

    CODE is a code, or a unique prefix of one.
    """
    ctl.emit(ctl.invitation(code), _print_invitation)


@invitations.command("revoke")
@click.argument("code")
@pass_ctl
def invitations_revoke(ctl: CtlContext, code: str) -> None:
    """Delete an invitation: joining with it fails from now on.

    CODE is a code, or a unique prefix of one.
    """
    result = ctl.client().revoke_invitation(ctl.invitation(code)["code"])
    ctl.emit(result, lambda r: click.echo(f"revoked invitation {r['code']}"))


@invitations.command("purge-expired")
@click.option(
    "--older-than-hours",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Only invitations that expired at least this long ago.",
)
@pass_ctl
def invitations_purge(ctl: CtlContext, older_than_hours: float) -> None:
    """Delete expired invitations now (the daemon also does it on its own schedule)."""
    result = ctl.client().purge_expired_invitations(older_than_hours=older_than_hours)
    ctl.emit(result, lambda r: click.echo(f"purged {r['purged']} expired invitations"))
