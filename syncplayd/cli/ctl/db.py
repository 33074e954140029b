"""``syncplayctl db`` (offline): schema migrations, with the daemon stopped."""

from __future__ import annotations

import re
from typing import Any

import click

from syncplayd.cli.common import run_migrations_command
from syncplayd.cli.ctl.context import PROG, CtlContext, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup


@click.group(cls=CtlGroup)
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
