"""What every ``syncplayctl`` command gets: the context object and the common arguments."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import click

from syncplayd.cli import ids, where
from syncplayd.cli.admin_client import (
    JSON,
    AdminClient,
    AdminError,
    DaemonUnreachable,
    ProblemError,
)
from syncplayd.cli.common import fail_line, load
from syncplayd.cli.output import echo_json
from syncplayd.config import Settings

PROG = "syncplayctl"


def fail(message: str, *, prog: str = PROG) -> NoReturn:
    """One line on stderr (a multi-line reason is joined), exit status 1."""
    fail_line(prog, message)


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

    def banned(self, room_id: UUID, wanted: UUID | ids.Prefix) -> UUID:
        """A USER argument of unban: a prefix is matched against the room's bans.

        A banned user is no longer a participant, so the participants cannot resolve it.
        """
        if isinstance(wanted, UUID):
            return wanted
        bans = self.client().bans(room_id)["items"]
        return ids.resolve(wanted, "banned user", bans, "user_id", "user_name")

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
# The arguments and options that commands of several groups take.
LIMIT = click.option(
    "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Rows to show."
)
OFFSET = click.option(
    "--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip."
)
ROOM = click.argument("room_id", metavar="ROOM", type=ids.IdOrPrefix("room"))


_DURATION = re.compile(r"^(?P<value>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(
    text: str, *, longest: timedelta, shortest: timedelta | None = None
) -> timedelta:
    """``90s``, ``15m``, ``1h`` or ``7d`` as a timedelta, within the bounds given.

    Raises:
        click.BadParameter: not a number and a unit, or out of bounds (a usage error).
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter("use a number and a unit: 90s, 15m, 1h or 7d")
    value = timedelta(**{_UNITS[match["unit"]]: int(match["value"])})
    low = shortest or timedelta(0)
    if value <= timedelta(0) or value < low or value > longest:
        least = f"at least {_spelled(shortest)}" if shortest else "more than 0"
        raise click.BadParameter(f"must be {least} and at most {_spelled(longest)}")
    return value


def _spelled(span: timedelta) -> str:
    """A bound as people type it: ``365d``, ``1m``."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def who(name: str | None, user_id: str | None, *, short: bool = False) -> str:
    """A user for people: ``Ada (6f1c0a52)``, or the id alone when the name is unknown."""
    if user_id is None:
        return "-"
    if not name:
        return user_id
    return f"{name} ({user_id[:8] if short else user_id})"


#: ``created_by`` of what the admin socket does (the admin API's SOCKET_ADMIN).
SOCKET_USER_ID = str(UUID(int=0))


def creator(document: JSON, *, short: bool = False) -> str:
    """Who made an invitation or a ban, from its ``created_by`` and ``created_by_name``."""
    name, user_id = document.get("created_by_name"), document["created_by"]
    if user_id == SOCKET_USER_ID and name:
        return str(name)  # "syncplayctl (admin socket)": the nil UUID says nothing more
    return who(name, user_id, short=short)


def echo_link(base: where.WatchBase, **query: str) -> None:
    """The watch link of what was just created (a room, an invitation), or why there is none."""
    link = base.link(**query)
    if link is not None:
        click.echo(f"watch link: {link}")
    if base.note is not None:
        click.echo(f"  ({base.note})" if link is not None else base.note)
