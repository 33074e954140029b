"""The ``syncplayctl`` main group: its global options, also taken after any command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from syncplayd import __version__
from syncplayd.cli.admin_client import AdminError
from syncplayd.cli.ctl.context import PROG, CtlContext, fail

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
