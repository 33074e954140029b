"""``syncplayctl config`` (offline): check or show the daemon's configuration."""

from __future__ import annotations

import click

from syncplayd.cli.common import fail_config
from syncplayd.cli.ctl.context import PROG, CtlContext, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup


@click.group("config", cls=CtlGroup)
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
