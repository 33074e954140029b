"""``syncplayctl``: administer a syncplayd server.

Online commands go through :class:`~syncplayd.cli.admin_client.AdminClient` to
the daemon's admin API (its unix socket by default, or HTTP with an admin
token); offline ones (``token``, ``db``, ``config``) read the same
configuration as the daemon and never talk to it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from uuid import UUID

import click

from syncplayd import __version__
from syncplayd.cli import ids, where
from syncplayd.cli.admin_client import (
    JSON,
    AdminClient,
    AdminError,
    DaemonUnreachable,
    ProblemError,
)
from syncplayd.cli.common import fail_config, fail_line, load, run_migrations_command
from syncplayd.cli.output import (
    Column,
    cell,
    echo_json,
    echo_page,
    echo_table,
    fields,
    when,
)
from syncplayd.config import Settings
from syncplayd.identity import SECRET_FILE_NAME, Principal, encode_token

PROG = "syncplayctl"
_DURATION = re.compile(r"^(?P<value>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_TTL = timedelta(days=365)
FOLLOW_INTERVAL_SECONDS = 1.0
FOLLOW_PAGE = 1000


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h`` or ``7d`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter("use a number and a unit: 90s, 15m, 1h or 7d")
    value = timedelta(**{_UNITS[match["unit"]]: int(match["value"])})
    if not timedelta(0) < value <= MAX_TTL:
        raise click.BadParameter("must be more than 0 and at most 365d")
    return value


def fail(message: str, *, prog: str = PROG) -> NoReturn:
    """One line on stderr (a multi-line reason is joined), exit status 1."""
    fail_line(prog, message)


# -- the context every command gets ---------------------------------------------------------
@dataclass
class CtlContext:
    """Global options; the settings are loaded on first use (``--help`` needs none)."""

    config_path: str | None
    url: str | None
    token_file: Path | None
    json: bool
    public_url: str | None = None
    _settings: Settings | None = field(default=None, repr=False)
    _client: AdminClient | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load(self.config_path, {}, prog=PROG)
        return self._settings

    def admin_url(self) -> str:
        """``--url``, else the configured admin socket."""
        if self.url is not None:
            return self.url
        return f"unix:{self.settings.admin_socket_path()}"

    def client(self) -> AdminClient:
        """The admin API client (closed when the command ends)."""
        if self._client is None:
            url = self.admin_url()
            token = self._token() if not url.startswith("unix:") else None
            try:
                self._client = AdminClient(url, token=token)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--url") from None
            click.get_current_context().call_on_close(self._client.close)
        return self._client

    def _token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the token file {self.token_file}: {exc}")
        if not token:
            fail(f"the token file {self.token_file} is empty")
        return token

    def emit(self, data: Any, human: Callable[[Any], None]) -> None:
        """The answer as JSON with ``--json``, else as ``human`` prints it."""
        if self.json:
            echo_json(data)
        else:
            human(data)

    # -- ids as typed: whole, or a unique prefix (see syncplayd.cli.ids) ----------------------
    def room(self, wanted: UUID | ids.Prefix) -> UUID:
        """A ROOM argument as a room id; a prefix is matched against every room."""
        client = self.client()
        rooms = ids.pages(
            lambda limit, offset: client.list_rooms(status="all", limit=limit, offset=offset)
        )
        return ids.resolve(wanted, "room", rooms, "id", "name")

    def member(self, room_id: UUID, wanted: UUID | ids.Prefix) -> UUID:
        """A USER argument as a user id; a prefix is matched against the room's participants."""
        if isinstance(wanted, UUID):
            return wanted
        members = self.client().participants(room_id)["items"]
        return ids.resolve(wanted, "participant", members, "user_id", "user_name")

    def invitation(self, code: str) -> JSON:
        """An invitation by its code or, when no code is that, by a unique prefix of one."""
        client = self.client()
        try:
            return client.get_invitation(code)
        except ProblemError as exc:
            prefix = ids.code_prefix(code)
            if exc.status != 404 or prefix is None:
                raise
            every = ids.pages(
                lambda limit, offset: client.list_invitations(limit=limit, offset=offset)
            )
            try:
                whole = ids.resolve_code(prefix, every)
            except ids.UnknownPrefix:
                raise exc from None
        return client.get_invitation(whole)

    # -- where things are (see syncplayd.cli.where) -------------------------------------------
    def watch_base(self) -> where.WatchBase:
        """Where the watch page is, for the links of ``rooms create`` and ``invitations create``."""
        try:
            config = self.client().config()
        except AdminError as exc:
            # The room or invitation exists by now: a missing link must not fail the command.
            return where.WatchBase(None, f"no watch link: cannot read the daemon's settings: {exc}")
        return where.watch_base(self.public_url, self.admin_url(), config)

    def unreachable_hint(self, error: AdminError) -> str:
        """What to add to ``error``: where the socket was looked for, when nobody chose it."""
        if not isinstance(error, DaemonUnreachable) or self.url is not None:
            return ""
        if self.settings.admin_socket_path().exists():
            return ""  # it is there: the reason (refused, permissions) is what matters
        return ". " + where.socket_hint(self.settings, self.config_path, os.environ, Path.cwd())


pass_ctl = click.make_pass_decorator(CtlContext)
_LIMIT = click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Rows to show."
)
_OFFSET = click.option(
    "--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip."
)
_ROOM = click.argument("room_id", metavar="ROOM", type=ids.IdOrPrefix("room"))
#: ``created_by`` of what the admin socket does (the admin API's SOCKET_ADMIN).
SOCKET_USER_ID = str(UUID(int=0))


def who(name: str | None, user_id: str | None, *, short: bool = False) -> str:
    """A user for people: ``Ada (6f1c0a52)``, or the id alone when the name is unknown."""
    if user_id is None:
        return "-"
    if not name:
        return user_id
    return f"{name} ({user_id[:8] if short else user_id})"


#: The options of the main group that every command also takes after its name: the
#: option's name there -> the CtlContext attribute it sets.
SHARED_OPTIONS = {
    "config_path": "config_path",
    "url": "url",
    "token_file": "token_file",
    "public_url": "public_url",
    "as_json": "json",
}


def _store(attribute: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        ctl = ctx.find_object(CtlContext)
        # None or False: not given here; what came before the command stands.
        if ctl is not None and value is not None and value is not False:
            setattr(ctl, attribute, value)

    return store


def _shared_options() -> list[click.Parameter]:
    """Copies of the main group's global options for one command.

    The group's own options read their environment variables; these copies do not, so
    that an option after the command overrides one before it, and a variable overrides
    neither. They are made from the group's options, so help and types never drift.
    """
    return [
        click.Option(
            param.opts,
            type=param.type,
            is_flag=param.is_flag,
            metavar=param.metavar,
            help=param.help,
            expose_value=False,
            callback=_store(SHARED_OPTIONS[param.name]),
        )
        for param in main.params
        if isinstance(param, click.Option) and param.name in SHARED_OPTIONS
    ]


class CtlGroup(click.Group):
    """The groups of syncplayctl: global options anywhere, admin API failures as one line.

    ``syncplayctl events ROOM --json`` is how people type it, so every command added to
    a group also takes the global options; subgroups are CtlGroups too.
    """

    group_class = type

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(_shared_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdminError as exc:
            ctl = ctx.find_object(CtlContext)
            fail(str(exc) + (ctl.unreachable_hint(exc) if ctl is not None else ""))


@click.group(cls=CtlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="The daemon's YAML configuration [env: SYNCPLAY_CONFIG].",
)
@click.option(
    "--url",
    "--admin-url",
    "url",
    metavar="URL",
    envvar="SYNCPLAYCTL_URL",
    help="The admin API: unix:/path/admin.sock, or http://HOST:PORT with --token-file "
    "[env: SYNCPLAYCTL_URL; default: the configured admin.socket].",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SYNCPLAYCTL_TOKEN_FILE",
    help="A file holding an admin token, for an http:// --url [env: SYNCPLAYCTL_TOKEN_FILE].",
)
@click.option(
    "--public-url",
    metavar="URL",
    envvar="SYNCPLAYCTL_PUBLIC_URL",
    help="Where people open the watch page (https://HOST[/PATH]), for the links that rooms"
    " create and invitations create print [env: SYNCPLAYCTL_PUBLIC_URL; default: --url, else"
    " the daemon's server.listen].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.version_option(__version__, prog_name=PROG)
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    public_url: str | None,
    as_json: bool,
) -> None:
    """Administer a syncplayd server.

    Online commands (status, rooms, participants, chat, invitations, events)
    talk to the daemon's admin API: by default on its unix socket (admin.socket
    in the configuration, else <state_dir>/admin.sock), where file permissions
    are the guard; or over HTTP with --url http://HOST:PORT and --token-file
    holding a token with the admin role (syncplayctl token create --admin).
    Offline commands (token, db, config) read the same configuration as the
    daemon (--config, SYNCPLAY_* variables) and do not need it running. The
    default socket's path comes from that configuration too: run syncplayctl
    with the daemon's SYNCPLAY_STATE_DIR (or its --config).

    Global options may also follow the command (syncplayctl events ROOM --json).
    ROOM and USER arguments take an id or a unique prefix of 4 or more of its
    characters, as git does; CODE takes a code or a unique prefix of one.

    Exit status: 0 success, 1 operational error (daemon unreachable, token
    refused, request refused), 2 usage error, 78 bad configuration.

    Shell completion, for bash (zsh_source and fish_source for those shells):

    \b
        eval "$(_SYNCPLAYCTL_COMPLETE=bash_source syncplayctl)"
    """
    ctx.obj = CtlContext(config_path, url, token_file, as_json, public_url)


# -- status --------------------------------------------------------------------------------
@main.command()
@pass_ctl
def status(ctl: CtlContext) -> None:
    """Daemon version, uptime, load and database.

    Load is the number of live rooms (rooms with someone connected), of
    connected sessions and of distinct connected users.
    """
    ctl.emit(ctl.client().status(), _print_status)


def _print_status(data: dict[str, Any]) -> None:
    database = data["database"]
    uptime = _duration(data["uptime_seconds"])
    health = f"ok ({database['latency_ms']} ms)" if database["ok"] else f"DOWN: {database['error']}"
    click.echo(
        fields(
            [
                ("version", data["version"]),
                ("uptime", f"{uptime} (since {when(data['started_at'])})"),
                ("live rooms", data["live_rooms"]),
                ("connections", f"{data['connections']} ({data['connected_users']} users)"),
                ("database", health),
            ]
        )
    )


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h {minutes:02d}m {secs:02d}s" if hours or days else f"{minutes}m {secs:02d}s"
    return f"{days}d {text}" if days else text


# -- rooms -----------------------------------------------------------------------------------
@main.group()
def rooms() -> None:
    """List, show, create, update and end rooms.

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
@_LIMIT
@_OFFSET
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
@_ROOM
@pass_ctl
def rooms_show(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Show a room's settings, playback and live sessions."""
    ctl.emit(ctl.client().get_room(ctl.room(room_id)), _print_room)


def _print_room(room: dict[str, Any]) -> None:
    playback = room["playback"]
    live = room.get("live")
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
            "playback",
            f"{playback['state']} at {playback['position']:.1f} s, rate {playback['rate']}"
            f" (version {playback['version']})",
        ),
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
                f"{live['connections']} connections, {now['state']} at {now['position']:.1f} s",
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
    public: bool,
    password_file: IO[str] | None,
    max_participants: int | None,
    playback_control: str | None,
) -> None:
    """Create a room on behalf of an owner, who becomes its first member.

    Prints the room's id and the watch page's link to it (see --public-url).
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
    )
    if ctl.json:
        echo_json(room)
        return
    owner = who(room.get("owner_name"), room["owner_id"])
    click.echo(f"created room {room['id']} ({cell(room['name'], width=None)}) for {cell(owner)}")
    _echo_link(ctl.watch_base(), room=room["id"])


def _echo_link(base: where.WatchBase, **query: str) -> None:
    link = base.link(**query)
    if link is not None:
        click.echo(f"watch link: {link}")
    if base.note is not None:
        click.echo(f"  ({base.note})" if link is not None else base.note)


@rooms.command("update")
@_ROOM
@click.option("--name", help="A new name.")
@click.option("--content-type", help="A new content type.")
@click.option("--content-id", help="A new content id.")
@click.option("--public/--private", "is_public", default=None, help="Change visibility.")
@_PASSWORD_FILE
@click.option("--no-password", is_flag=True, help="Remove the password.")
@click.option("--max-participants", type=click.IntRange(2, 1000), help="A new capacity.")
@_CONTROL
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
) -> None:
    """Change a room's settings; options not given stay as they are."""
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
@_ROOM
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


# -- participants -------------------------------------------------------------------------------
@main.group()
def participants() -> None:
    """List a room's participants, or kick one."""


@participants.command("list")
@_ROOM
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
@_ROOM
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


# -- chat ---------------------------------------------------------------------------------------
@main.group()
def chat() -> None:
    """Read a room's chat history, or delete a message."""


@chat.command("history")
@_ROOM
@_LIMIT
@_OFFSET
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
    """Delete a chat message (clients already showing it keep it until they rejoin)."""
    result = ctl.client().delete_chat(message_id)
    ctl.emit(result, lambda r: click.echo(f"deleted message {r['id']}"))


# -- invitations ------------------------------------------------------------------------------
@main.group()
def invitations() -> None:
    """Create, list, inspect and revoke invitation codes."""


def _creator(invitation: dict[str, Any], *, short: bool = False) -> str:
    name, user_id = invitation.get("created_by_name"), invitation["created_by"]
    if user_id == SOCKET_USER_ID and name:
        return str(name)  # "syncplayctl (admin socket)": the nil UUID says nothing more
    return who(name, user_id, short=short)


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
        ("created by", _creator(invitation)),
    ]
    room = invitation.get("room")
    if room:
        pairs.append(("room name", room["name"]))
        pairs.append(("room ended", when(room["ended_at"])))
    click.echo(fields(pairs))


@invitations.command("create")
@_ROOM
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
    _echo_link(ctl.watch_base(), invite=invitation["code"])


def _state(invitation: dict[str, Any]) -> str:
    if invitation["expired"]:
        return "expired"
    return "used up" if invitation["used_up"] else "live"


@invitations.command("list")
@click.argument("room_id", metavar="[ROOM]", required=False, type=ids.IdOrPrefix("room"))
@_LIMIT
@_OFFSET
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
        ("CREATED BY", lambda i: cell(_creator(i, short=True), width=30)),
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


# -- events -------------------------------------------------------------------------------------
def _event_line(event: dict[str, Any]) -> str:
    user = cell(who(event.get("user_name"), event["user_id"], short=True), width=40)
    payload = cell(event["payload"], width=None) if event["payload"] else ""
    return f"{event['id']:>8}  {when(event['created_at'])}  {event['type']:<16}  {user}  {payload}"


def _print_events(page: dict[str, Any]) -> None:
    if not page["items"]:
        click.echo("no events")
        return
    for event in page["items"]:
        click.echo(_event_line(event))
    total, offset, shown = page["total"], page["offset"], len(page["items"])
    if total > offset + shown:
        click.echo(f"({offset + 1}-{offset + shown} of {total} events; use --offset for more)")


@main.command()
@_ROOM
@_LIMIT
@_OFFSET
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new events (polls every second) until Ctrl-C.",
)
@pass_ctl
def events(
    ctl: CtlContext, room_id: UUID | ids.Prefix, limit: int, offset: int, follow: bool
) -> None:
    """A room's event log; --follow for live events.

    Events (joins, playback changes, kicks...) are listed newest first.

    With --follow, print the latest --limit events oldest first, then poll the
    daemon every second for new ones and print them as they come, until you
    press Ctrl-C (exit status 0). With --json, --follow prints one JSON object
    per line.
    """
    client = ctl.client()
    room_id = ctl.room(room_id)
    page = client.events(room_id, limit=limit, offset=offset)
    if not follow:
        ctl.emit(page, _print_events)
        return
    show: Callable[[dict[str, Any]], None] = (
        (lambda e: echo_json(e, compact=True))
        if ctl.json
        else (lambda e: click.echo(_event_line(e)))
    )
    latest = list(reversed(page["items"]))
    last = max((event["id"] for event in latest), default=0)
    try:
        for event in latest:
            show(event)
        while True:
            time.sleep(FOLLOW_INTERVAL_SECONDS)
            for event in client.events(room_id, after=last, limit=FOLLOW_PAGE)["items"]:
                show(event)
                last = max(last, event["id"])
    except KeyboardInterrupt:
        return


# -- tokens (offline) ---------------------------------------------------------------------------
@main.group()
def token() -> None:
    """Mint tokens for the API and --token-file."""


@token.command("create")
@click.option(
    "--user", "user_id", required=True, type=click.UUID, help="The user's UUID (the token's sub)."
)
@click.option("--name", required=True, help="Display name.")
@click.option("--admin", is_flag=True, help="Give the token the admin role.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 7d.")
@pass_ctl
def token_create(ctl: CtlContext, user_id: UUID, name: str, admin: bool, ttl: str) -> None:
    """Print a token signed with the daemon's secret."""
    lifetime = parse_duration(ttl)
    if not name.strip():
        raise click.BadParameter("must not be blank", param_hint="--name")
    settings = ctl.settings
    secret = _secret(ctl)
    principal = Principal(user_id=user_id, name=name.strip(), is_admin=admin)
    text = encode_token(
        principal,
        secret,
        ttl=lifetime,
        audience=settings.auth.jwt_audience,
        issuer=settings.auth.jwt_issuer,
    )
    if ctl.json:
        echo_json({"token": text, "expires_in_seconds": int(lifetime.total_seconds())})
    else:
        click.echo(text)


def _secret(ctl: CtlContext) -> str:
    settings = ctl.settings
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    path = Path(settings.server.state_dir) / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        hint = where.secret_hint(settings, path, ctl.config_path, os.environ, Path.cwd())
        fail(f"no auth.jwt_secret configured and no generated secret at {path}: {hint}")
    except PermissionError:
        fail(
            f"cannot read the generated secret {path}: permission denied; run syncplayctl as"
            " the daemon's user (sudo -u syncplayd ...), or give the secret with"
            " SYNCPLAY_AUTH_JWT_SECRET or auth.jwt_secret_file"
        )
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the generated secret {path}: {exc}")


# -- database (offline) ---------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema migrations (works with the daemon stopped)."""


_MIGRATION = re.compile(r"^(?P<version>\d+)_(?P<name>\S+)\s+(?P<state>.+)$")
_DONE = re.compile(r"^(?P<verb>applied|reverted) (?P<version>\d+)_(?P<name>\S+)$")
_VERSION = re.compile(r"^schema version (?P<now>\d+) \(this syncplayd: (?P<code>\d+)\)$")


def migrations_json(action: str, lines: list[str]) -> dict[str, Any]:
    """The lines of ``run_migrations`` as data (what ``--json`` prints)."""
    out: dict[str, Any] = {"action": action, "messages": []}
    if action == "status":
        out["migrations"] = []
    else:
        out.update({"applied": [], "reverted": [], "schema_version": None, "code_version": None})
    for line in lines:
        done, version = _DONE.match(line), _VERSION.match(line)
        status_line = _MIGRATION.match(line) if action == "status" else None
        if done and action != "status":
            out[done["verb"]].append({"version": int(done["version"]), "name": done["name"]})
        elif version and action != "status":
            out["schema_version"], out["code_version"] = int(version["now"]), int(version["code"])
        elif status_line:
            state = status_line["state"]
            applied_at = state.removeprefix("applied ") if state.startswith("applied 2") else None
            kind = "applied" if applied_at else ("pending" if state == "pending" else state)
            out["migrations"].append(
                {
                    "version": int(status_line["version"]),
                    "name": status_line["name"],
                    "state": kind,
                    "applied_at": applied_at,
                }
            )
        else:
            out["messages"].append(line)
    return out


@db.command("migrate")
@click.argument("action", type=click.Choice(["up", "down"]), default="up")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Migrations to revert (down).",
)
@pass_ctl
def db_migrate(ctl: CtlContext, action: str, steps: int) -> None:
    """Apply pending migrations (up, the default) or revert the newest (down).

    Back up the database before going down: reverting drops what the
    migration added.
    """
    lines = run_migrations_command(ctl.settings, action, steps, prog=PROG)
    ctl.emit(migrations_json(action, lines), lambda _: click.echo("\n".join(lines)))


@db.command("status")
@pass_ctl
def db_status(ctl: CtlContext) -> None:
    """List the migrations and whether each is applied."""
    lines = run_migrations_command(ctl.settings, "status", 1, prog=PROG)
    ctl.emit(migrations_json("status", lines), lambda _: click.echo("\n".join(lines)))


# -- configuration (offline) ---------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Check or show the configuration the daemon would run with."""


@config_group.command("check")
@pass_ctl
def config_check(ctl: CtlContext) -> None:
    """Validate the configuration as the daemon would.

    Exit status 78 and one line per problem if it is bad.
    """
    from syncplayd.cli.daemon import refusal  # what the daemon refuses to start with

    settings = ctl.settings
    refused = refusal(settings)
    if refused is not None:
        fail_config(PROG, refused)
    body = {
        "ok": True,
        "admin_socket": str(settings.admin_socket_path()),
        "listen": settings.server.listen,
    }
    ctl.emit(body, lambda _: click.echo("configuration OK"))


@config_group.command("show")
@pass_ctl
def config_show(ctl: CtlContext) -> None:
    """Print the effective configuration as YAML (JSON with --json), secrets masked."""
    import yaml

    from syncplayd.config import dump_settings

    data = dump_settings(ctl.settings, mask_secrets=True)
    ctl.emit(data, lambda d: click.echo(yaml.safe_dump(d, sort_keys=False).rstrip("\n")))


if __name__ == "__main__":
    main()
