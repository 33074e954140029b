"""What both commands share: finding and loading the configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import partial
from typing import Literal, NoReturn, cast

import click

from syncplayd.config import (
    ConfigError,
    Settings,
    load_settings_from_path,
    unknown_env_warnings,
)

# sysexits.h EX_CONFIG: systemd units can refuse to restart on it
# (RestartPreventExitStatus=78) instead of looping on a broken config file.
EXIT_CONFIG = 78


def load(config_path: str | None, overrides: Mapping[str, str], *, prog: str) -> Settings:
    """Load settings from the file (``--config`` or ``SYNCPLAY_CONFIG``), env and flags.

    Warns about unknown ``SYNCPLAY_*`` variables; exits with status 78 and every problem, one
    per line, when the configuration is bad.
    """
    for warning in unknown_env_warnings(os.environ):
        click.echo(f"{prog}: warning: {warning}", err=True)
    try:
        return load_settings_from_path(config_path, os.environ, overrides)
    except ConfigError as exc:
        fail_config(prog, exc)


def fail_line(prog: str, message: str) -> NoReturn:
    """An operational error: one line on stderr (a multi-line reason is joined), exit 1."""
    click.echo(f"{prog}: {' '.join(message.split())}", err=True)
    sys.exit(1)


def run_migrations_command(settings: Settings, action: str, steps: int, *, prog: str) -> list[str]:
    """``run_migrations`` for a command line (``syncplayd migrate``, ``syncplayctl db``).

    Returns its lines; a database error or a bad action is one line and exit 1.
    """
    import trio  # the database stack is only needed by these commands

    from syncplayd.storage import StorageError, run_migrations

    try:
        verb = cast("Literal['up', 'down', 'status']", action)
        return trio.run(partial(run_migrations, settings.database.url, verb, steps=steps))
    except (StorageError, ValueError) as exc:
        fail_line(prog, str(exc))


def fail_config(prog: str, error: ConfigError) -> NoReturn:
    """A bad configuration: each problem on its own line on stderr, exit status 78."""
    for problem in error.problems:
        click.echo(f"{prog}: {problem}", err=True)
    sys.exit(EXIT_CONFIG)
