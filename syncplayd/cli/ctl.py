"""``syncplayctl``: administer a syncplayd server.

Online commands go through :class:`~syncplayd.cli.admin_client.AdminClient` to
the daemon's admin API (its unix socket by default, or HTTP with an admin
token); offline ones (``token``, ``db``, ``config``) read the same
configuration as the daemon and never talk to it.
"""

from __future__ import annotations

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
from syncplayd.cli.admin_client import AdminClient, AdminError
from syncplayd.cli.common import fail_line, load, run_migrations_command
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


pass_ctl = click.make_pass_decorator(CtlContext)
_LIMIT = click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Rows to show."
)
_OFFSET = click.option(
    "--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip."
)


class CtlGroup(click.Group):
    """A group that turns admin API failures into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AdminError as exc:
            fail(str(exc))


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.version_option(__version__, prog_name=PROG)
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    url: str | None,
    token_file: Path | None,
    as_json: bool,
) -> None:
    """Administer a syncplayd server.

    Online commands (status, rooms, participants, chat, invitations, events)
    talk to the daemon's admin API: by default on its unix socket (admin.socket
    in the configuration, else <state_dir>/admin.sock), where file permissions
    are the guard; or over HTTP with --url http://HOST:PORT and --token-file
    holding a token with the admin role (syncplayctl token create --admin).
    Offline commands (token, db, config) read the same configuration as the
    daemon (--config, SYNCPLAY_* variables) and do not need it running.

    Exit status: 0 success, 1 operational error (daemon unreachable, token
    refused, request refused), 2 usage error, 78 bad configuration.

    Shell completion, for bash (zsh_source and fish_source for those shells):

    \b
        eval "$(_SYNCPLAYCTL_COMPLETE=bash_source syncplayctl)"
    """
    ctx.obj = CtlContext(config_path, url, token_file, as_json)


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
    ("OWNER", lambda r: r["owner_id"]),
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
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@pass_ctl
def rooms_show(ctl: CtlContext, room_id: UUID) -> None:
    """Show a room's settings, playback and live sessions."""
    ctl.emit(ctl.client().get_room(room_id), _print_room)


def _print_room(room: dict[str, Any]) -> None:
    playback = room["playback"]
    click.echo(
        fields(
            [
                ("id", room["id"]),
                ("name", room["name"]),
                ("owner", room["owner_id"]),
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
        )
    )
    live = room.get("live")
    if live is None:
        if room.get("ended_at") is None:
            click.echo("live:     no (nobody connected)")
        return
    now = live["playback"]
    click.echo(
        f"live:     {live['connections']} connections, {now['state']} at {now['position']:.1f} s"
    )
    if live["sessions"]:
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
@click.option("--owner-name", help="The owner's display name [default: first 8 chars of the id].")
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
    owner_name: str | None,
    name: str,
    content_type: str,
    content_id: str,
    public: bool,
    password_file: IO[str] | None,
    max_participants: int | None,
    playback_control: str | None,
) -> None:
    """Create a room on behalf of an owner, who becomes its first member."""
    room = ctl.client().create_room(
        owner_id=owner_id,
        name=name,
        content_type=content_type,
        content_id=content_id,
        owner_name=owner_name,
        is_public=public,
        password=_password(password_file),
        max_participants=max_participants,
        playback_control=playback_control,
    )
    ctl.emit(room, lambda r: click.echo(f"created room {r['id']} ({cell(r['name'], width=None)})"))


@rooms.command("update")
@click.argument("room_id", metavar="ROOM", type=click.UUID)
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
    room_id: UUID,
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
    room = ctl.client().update_room(room_id, changes)
    ctl.emit(room, lambda r: click.echo(f"updated room {r['id']} ({cell(r['name'], width=None)})"))


@rooms.command("end")
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@click.option("--purge", is_flag=True, help="Also delete it with its chat, members and events.")
@pass_ctl
def rooms_end(ctl: CtlContext, room_id: UUID, purge: bool) -> None:
    """End a room: connected clients are told and disconnected.

    An ended room stays readable; with --purge it is deleted for good.
    """
    result = ctl.client().end_room(room_id, purge=purge)
    verb = "purged" if purge else "ended"
    ctl.emit(result, lambda r: click.echo(f"{verb} room {r['room_id']}"))


# -- participants -------------------------------------------------------------------------------
@main.group()
def participants() -> None:
    """List a room's participants, or kick one."""


@participants.command("list")
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@click.option("--connected", is_flag=True, help="Only participants with a live connection.")
@pass_ctl
def participants_list(ctl: CtlContext, room_id: UUID, connected: bool) -> None:
    """List a room's participants in joining order (SESSIONS: live connections)."""
    page = ctl.client().participants(room_id, connected=connected)
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
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@click.argument("user_id", metavar="USER", type=click.UUID)
@pass_ctl
def participants_kick(ctl: CtlContext, room_id: UUID, user_id: UUID) -> None:
    """Remove a participant; their live sessions are closed with reason "kicked".

    This is not a ban: the user can join again if the room lets them (public
    room, password, invitation).
    """
    result = ctl.client().kick(room_id, user_id)
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
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@_LIMIT
@_OFFSET
@pass_ctl
def chat_history(ctl: CtlContext, room_id: UUID, limit: int, offset: int) -> None:
    """Show a room's chat, newest first (ID is what chat delete takes)."""
    page = ctl.client().chat_history(room_id, limit=limit, offset=offset)
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
    """Create, inspect and revoke invitation codes."""


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
        ("created by", invitation["created_by"]),
    ]
    room = invitation.get("room")
    if room:
        pairs.append(("room name", room["name"]))
        pairs.append(("room ended", when(room["ended_at"])))
    click.echo(fields(pairs))


@invitations.command("create")
@click.argument("room_id", metavar="ROOM", type=click.UUID)
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
    room_id: UUID,
    invited_user_id: UUID | None,
    expires_in_hours: float | None,
    max_uses: int | None,
) -> None:
    """Create an invitation to a room and print its code."""
    invitation = ctl.client().create_invitation(
        room_id,
        invited_user_id=invited_user_id,
        expires_in_hours=expires_in_hours,
        max_uses=max_uses,
    )
    ctl.emit(invitation, _print_invitation)


@invitations.command("show")
@click.argument("code")
@pass_ctl
def invitations_show(ctl: CtlContext, code: str) -> None:
    """Show an invitation, including expired and used-up ones."""
    ctl.emit(ctl.client().get_invitation(code), _print_invitation)


@invitations.command("revoke")
@click.argument("code")
@pass_ctl
def invitations_revoke(ctl: CtlContext, code: str) -> None:
    """Delete an invitation: joining with it fails from now on."""
    result = ctl.client().revoke_invitation(code)
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
    user = event["user_id"] or "-"
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
@click.argument("room_id", metavar="ROOM", type=click.UUID)
@_LIMIT
@_OFFSET
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing new events (polls every second) until Ctrl-C.",
)
@pass_ctl
def events(ctl: CtlContext, room_id: UUID, limit: int, offset: int, follow: bool) -> None:
    """A room's event log; --follow for live events.

    Events (joins, playback changes, kicks...) are listed newest first.

    With --follow, print the latest --limit events oldest first, then poll the
    daemon every second for new ones and print them as they come, until you
    press Ctrl-C (exit status 0). With --json, --follow prints one JSON object
    per line.
    """
    client = ctl.client()
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
    secret = _secret(settings)
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


def _secret(settings: Settings) -> str:
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    path = Path(settings.server.state_dir) / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        fail(
            f"no auth.jwt_secret configured and no generated secret at {path} "
            "(start the daemon once, or set SYNCPLAY_AUTH_JWT_SECRET)"
        )


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
    """Validate the configuration (exit status 78 and one line if it is bad)."""
    settings = ctl.settings
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
