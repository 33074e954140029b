"""What every ``syncplayctl`` command gets: the context object and the common arguments."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
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


def who(name: str | None, user_id: str | None, *, short: bool = False) -> str:
    """A user for people: ``Ada (6f1c0a52)``, or the id alone when the name is unknown."""
    if user_id is None:
        return "-"
    if not name:
        return user_id
    return f"{name} ({user_id[:8] if short else user_id})"


def echo_link(base: where.WatchBase, **query: str) -> None:
    """The watch link of what was just created (a room, an invitation), or why there is none."""
    link = base.link(**query)
    if link is not None:
        click.echo(f"watch link: {link}")
    if base.note is not None:
        click.echo(f"  ({base.note})" if link is not None else base.note)
