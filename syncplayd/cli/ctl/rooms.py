"""``syncplayctl rooms``: list, show, create, update and end rooms; bans, ownership, the queue."""

from __future__ import annotations

from typing import IO, Any
from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl import queue
from syncplayd.cli.ctl.context import (
    LIMIT,
    OFFSET,
    ROOM,
    CtlContext,
    creator,
    echo_link,
    pass_ctl,
    who,
)
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_json, echo_page, echo_table, fields, when


@click.group(cls=CtlGroup)
def rooms() -> None:
    """List, show, create, update and end rooms; bans, ownership, the queue.

    Private rooms included: the admin API sees every room.
    """


_ROOM_COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("NAME", lambda r: cell(r["name"], width=30)),
    ("OWNER", lambda r: cell(who(r.get("owner_name"), r["owner_id"], short=True), width=30)),
    ("PUBLIC", lambda r: cell(r["is_public"])),
    ("MEMBERS", lambda r: f"{r['participant_count']}/{r['max_participants']}"),
    ("LIVE", lambda r: str(r.get("connections", 0))),
    ("CREATED", lambda r: when(r["created_at"])),
    ("ENDED", lambda r: when(r["ended_at"])),
]


@rooms.command("list")
@click.option(
    "--status",
    "state",
    type=click.Choice(["active", "ended", "all"]),
    default="active",
    show_default=True,
    help="Which rooms, by whether they have ended.",
)
@click.option("--public-only", is_flag=True, help="Only public rooms.")
@click.option("--user", type=click.UUID, help="Only rooms this user owns or has joined.")
@click.option("--content-type", help="Only rooms with exactly this content type.")
@click.option("--content-id", help="Only rooms with exactly this content id.")
@LIMIT
@OFFSET
@pass_ctl
def rooms_list(
    ctl: CtlContext,
    state: str,
    public_only: bool,
    user: UUID | None,
    content_type: str | None,
    content_id: str | None,
    limit: int,
    offset: int,
) -> None:
    """List rooms, newest first (LIVE counts connected sessions)."""
    page = ctl.client().list_rooms(
        status=state,
        public_only=public_only,
        user=user,
        content_type=content_type,
        content_id=content_id,
        limit=limit,
        offset=offset,
    )
    ctl.emit(page, lambda p: echo_page(p, _ROOM_COLUMNS, "rooms"))


@rooms.command("show")
@ROOM
@pass_ctl
def rooms_show(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Show a room's settings, its queue's current item, playback and live sessions."""
    ctl.emit(ctl.client().get_room(ctl.room(room_id)), _print_room)


def _print_room(room: dict[str, Any]) -> None:
    playback = room["playback"]
    live = room.get("live")
    length = queue.current_duration(room.get("queue"))
    pairs: list[tuple[str, Any]] = [
        ("id", room["id"]),
        ("name", room["name"]),
        ("owner", who(room.get("owner_name"), room["owner_id"])),
        ("content", f"{room['content_type']} {room['content_id']}"),
        ("public", room["is_public"]),
        ("password", room["has_password"]),
        ("members", f"{room['participant_count']}/{room['max_participants']}"),
        ("control", room["playback_control"]),
        (
            "moderators",
            "may act on other moderators"
            if room.get("moderators_manage_moderators")
            else "act on members only",
        ),
        ("buffering", _SLOW_TEXT.get(room.get("wait_for_slow_members", ""), "-")),
        (
            "start",
            "when everyone is ready" if room.get("start_when_ready") else "when someone plays",
        ),
        *queue.queue_fields(room.get("queue")),
        ("playback", f"{_playback_text(playback, length)} (version {playback['version']})"),
        ("created", when(room["created_at"])),
        ("updated", when(room["updated_at"])),
        ("ended", when(room["ended_at"])),
    ]
    # One fields() call for every line, so that "live" lines up with the rest.
    if live is not None:
        now = live["playback"]
        pairs.append(
            (
                "live",
                f"{live['connections']} connections, {_playback_text(now)}",
            )
        )
    elif room.get("ended_at") is None:
        pairs.append(("live", "no (nobody connected)"))
    click.echo(fields(pairs))
    if live is not None and live["sessions"]:
        echo_table(
            live["sessions"],
            [
                ("SESSION", lambda s: s["session_id"]),
                ("USER", lambda s: s["user_id"]),
                ("NAME", lambda s: cell(s["user_name"], width=24)),
                ("ROLE", lambda s: s["role"]),
                ("CONNECTED", lambda s: cell(s["connected"])),
                ("BUFFERING", lambda s: cell(s["buffering"])),
                ("RTT_MS", lambda s: cell(s["rtt_ms"])),
            ],
        )


# wait_for_slow_members, as what the room does.
_SLOW_TEXT = {
    "always": "the room always waits for a member who buffers",
    "policy": "the room waits for a member who buffers, until they stall it too often",
    "never": "the room never waits: a member who buffers catches up alone",
}


def _playback_text(playback: dict[str, Any], duration: float | None = None) -> str:
    """``playing at 12.5 s of 60.0 s, rate 1.0``; at the end of the media ``ended at 60.0 s``.

    The live playback says ``ended`` and ``duration`` itself; the stored one does not,
    and is at its end when paused at the current item's duration (``duration``), which
    is where the room stops.
    """
    duration = playback.get("duration", duration)
    position = playback["position"]
    of = f" of {duration:.1f} s" if duration is not None else ""
    at_end = duration is not None and playback["state"] == "paused" and position >= duration
    if playback.get("ended") or at_end:
        return f"ended at {position:.1f} s{of}"
    return f"{playback['state']} at {position:.1f} s{of}, rate {playback['rate']}"


def _password(source: IO[str] | None) -> str | None:
    if source is None:
        return None
    text = source.readline().rstrip("\r\n")
    if not text:
        raise click.BadParameter("the password file is empty", param_hint="--password-file")
    return text


_PASSWORD_FILE = click.option(
    "--password-file",
    type=click.File("r"),
    help="Read the room password from the first line of this file ('-': standard input).",
)
_CONTROL = click.option(
    "--playback-control",
    type=click.Choice(["everyone", "moderators"]),
    help="Who may play, pause and seek.",
)


@rooms.command("create")
@click.option("--owner", "owner_id", required=True, type=click.UUID, help="The owner's user id.")
@click.option(
    "--owner-name",
    required=True,
    help="The owner's name as the members see it (syncplayd has no user directory to look"
    " it up in).",
)
@click.option("--name", required=True, help="The room's name.")
@click.option("--content-type", required=True, help="For example movie or episode.")
@click.option("--content-id", required=True, help="The media's id on the media server.")
@click.option("--title", help="The content's title, shown in the queue (default: its id).")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="The content's length, if known: otherwise the first player to load it reports it.",
)
@click.option("--public", is_flag=True, help="List the room to everyone (default: private).")
@_PASSWORD_FILE
@click.option("--max-participants", type=click.IntRange(2, 1000), help="Capacity.")
@_CONTROL
@pass_ctl
def rooms_create(
    ctl: CtlContext,
    owner_id: UUID,
    owner_name: str,
    name: str,
    content_type: str,
    content_id: str,
    title: str | None,
    duration: float | None,
    public: bool,
    password_file: IO[str] | None,
    max_participants: int | None,
    playback_control: str | None,
) -> None:
    """Create a room on behalf of an owner, who becomes its first member.

    Its content is the first item of its queue (rooms queue adds more). Prints
    the room's id and the watch page's link to it (see --public-url).
    """
    room = ctl.client().create_room(
        owner_id=owner_id,
        owner_name=owner_name,
        name=name,
        content_type=content_type,
        content_id=content_id,
        is_public=public,
        password=_password(password_file),
        max_participants=max_participants,
        playback_control=playback_control,
        content_title=title,
        content_duration=duration,
    )
    if ctl.json:
        echo_json(room)
        return
    owner = who(room.get("owner_name"), room["owner_id"])
    click.echo(f"created room {room['id']} ({cell(room['name'], width=None)}) for {cell(owner)}")
    echo_link(ctl.watch_base(), room=room["id"])


@rooms.command("update")
@ROOM
@click.option("--name", help="A new name.")
@click.option("--content-type", help="A new content type.")
@click.option("--content-id", help="A new content id.")
@click.option("--public/--private", "is_public", default=None, help="Change visibility.")
@_PASSWORD_FILE
@click.option("--no-password", is_flag=True, help="Remove the password.")
@click.option("--max-participants", type=click.IntRange(2, 1000), help="A new capacity.")
@_CONTROL
@click.option(
    "--moderators-manage-moderators/--no-moderators-manage-moderators",
    "moderators_manage_moderators",
    default=None,
    help="Whether moderators may kick, ban and mute other moderators (never the owner).",
)
@click.option(
    "--wait-for-slow-members",
    type=click.Choice(["always", "policy", "never"]),
    help="Whether the room waits for a member who buffers: always; until they have stalled it"
    " too often (policy, the syncplay.sync.slow_member_* keys); never.",
)
@click.option(
    "--start-when-ready/--no-start-when-ready",
    "start_when_ready",
    default=None,
    help="Whether the room starts by itself once everyone says they are ready (and a plain"
    " member's play waits for them).",
)
@pass_ctl
def rooms_update(
    ctl: CtlContext,
    room_id: UUID | ids.Prefix,
    name: str | None,
    content_type: str | None,
    content_id: str | None,
    is_public: bool | None,
    password_file: IO[str] | None,
    no_password: bool,
    max_participants: int | None,
    playback_control: str | None,
    moderators_manage_moderators: bool | None,
    wait_for_slow_members: str | None,
    start_when_ready: bool | None,
) -> None:
    """Change a room's settings; options not given stay as they are.

    A new --content-type/--content-id replaces what the queue's current item
    plays; rooms queue adds and removes items.
    """
    if password_file is not None and no_password:
        raise click.UsageError("give --password-file or --no-password, not both")
    changes: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "content_type": content_type,
            "content_id": content_id,
            "is_public": is_public,
            "max_participants": max_participants,
            "playback_control": playback_control,
            "moderators_manage_moderators": moderators_manage_moderators,
            "wait_for_slow_members": wait_for_slow_members,
            "start_when_ready": start_when_ready,
        }.items()
        if value is not None
    }
    if password_file is not None:
        changes["password"] = _password(password_file)
    if no_password:
        changes["password"] = None
    if not changes:
        raise click.UsageError("give at least one setting to change")
    room = ctl.client().update_room(ctl.room(room_id), changes)
    ctl.emit(room, lambda r: click.echo(f"updated room {r['id']} ({cell(r['name'], width=None)})"))


@rooms.command("end")
@ROOM
@click.option("--purge", is_flag=True, help="Also delete it with its chat, members and events.")
@pass_ctl
def rooms_end(ctl: CtlContext, room_id: UUID | ids.Prefix, purge: bool) -> None:
    """End a room: connected clients are told and disconnected.

    An ended room stays readable; with --purge it is deleted for good. Ending
    an ended room again changes nothing and says so.
    """
    result = ctl.client().end_room(ctl.room(room_id), purge=purge)
    ctl.emit(result, lambda r: click.echo(_ended(r)))


def _ended(result: dict[str, Any]) -> str:
    before = " (it had already ended)" if result.get("already_ended") else ""
    if result["purged"]:
        return f"purged room {result['room_id']}{before}"
    if before:
        return f"room {result['room_id']} had already ended: nothing changed"
    return f"ended room {result['room_id']}"


@rooms.command("bans")
@ROOM
@pass_ctl
def rooms_bans(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """List the bans in force in a room, newest first.

    UNTIL "-" is until lifted; expired bans are not shown. USER is what
    participants unban takes.
    """
    page = ctl.client().bans(ctl.room(room_id))
    columns: list[Column] = [
        ("USER", lambda b: b["user_id"]),
        ("NAME", lambda b: cell(b["user_name"], width=24)),
        ("SINCE", lambda b: when(b["created_at"])),
        ("UNTIL", lambda b: when(b["expires_at"])),
        ("BY", lambda b: cell(creator(b, short=True), width=30)),
        ("REASON", lambda b: cell(b["reason"])),
    ]
    ctl.emit(page, lambda p: echo_page(p, columns, "bans"))


@rooms.command("transfer")
@ROOM
@click.argument("user_id", metavar="USER", type=ids.IdOrPrefix("user"))
@pass_ctl
def rooms_transfer(ctl: CtlContext, room_id: UUID | ids.Prefix, user_id: UUID | ids.Prefix) -> None:
    """Hand the room to a participant; the old owner stays as a moderator.

    USER must be a participant of the room. Their sessions (and everyone's) see
    the new roles at once.
    """
    rid = ctl.room(room_id)
    room = ctl.client().transfer(rid, ctl.member(rid, user_id))
    owner = who(room.get("owner_name"), room["owner_id"])
    ctl.emit(
        room,
        lambda r: click.echo(
            f"room {r['id']} ({cell(r['name'], width=None)}) now belongs to {cell(owner)}"
        ),
    )


rooms.add_command(queue.queue_group)
