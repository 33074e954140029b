"""What the tests of ``syncplayctl`` against a real daemon share (fixtures: ``conftest.py``).

:class:`Daemon` is the running daemon with the token files the tests use; :func:`ctl`
runs a command that must succeed and parses its JSON, :func:`failing` one that must
fail with one line on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from click.testing import CliRunner

from syncplayd.cli.ctl import main
from syncplayd.identity import Principal, encode_token
from tests.daemon_process import SECRET, DaemonProcess

UNREACHABLE = "cannot reach the daemon at"
REFUSED = "the admin token was refused"


@dataclass
class Daemon:
    process: DaemonProcess
    socket: Path
    admin_token_file: Path
    user_token_file: Path
    forged_token_file: Path
    database: Path

    @property
    def base_url(self) -> str:
        return self.process.base_url


def token_file(folder: Path, name: str, principal: Principal, secret: str = SECRET) -> Path:
    path = folder / name
    path.write_text(encode_token(principal, secret, ttl=timedelta(hours=1)) + "\n")
    return path


def ctl(runner: CliRunner, via: list[str], *args: str, stdin: str | None = None) -> Any:
    """Run ``syncplayctl --json ARGS`` successfully and parse what it printed."""
    result = runner.invoke(main, [*via, "--json", *args], input=stdin)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return json.loads(result.stdout)


def failing(runner: CliRunner, args: list[str], env: Mapping[str, str | None] | None = None) -> str:
    """Run a command that must fail with status 1 and one line on stderr; return the line."""
    result = runner.invoke(main, args, env=env)
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncplayctl: ")
    return lines[0]


def new_room(runner: CliRunner, via: list[str], **options: str) -> dict[str, Any]:
    owner = options.pop("owner", str(uuid4()))
    owner_name = options.pop("owner_name", "Owner")
    args = ["rooms", "create", "--owner", owner, "--owner-name", owner_name, "--name", "CLI room"]
    args += ["--content-type", "movie", "--content-id", "tt0133093"]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}"] + ([value] if value else [])
    room: dict[str, Any] = ctl(runner, via, *args)
    return room
