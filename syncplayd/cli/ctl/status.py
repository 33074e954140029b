"""``syncplayctl status``: the daemon's health and load."""

from __future__ import annotations

from typing import Any

import click

from syncplayd.cli.ctl.context import CtlContext, pass_ctl
from syncplayd.cli.output import fields, table, when


@click.command()
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
    cluster = data.get("cluster")
    if cluster is not None:
        _print_cluster(cluster)


def _print_cluster(cluster: dict[str, Any]) -> None:
    """Multi-node mode: the nodes, which one answered, and the rooms each runs."""
    click.echo(f"\nnodes (this is {cluster['node_id']}):")
    if cluster["nodes"] is None:
        click.echo(f"  unknown: {cluster['error']}")
        return
    rows = [
        (
            node["node_id"],
            node["url"],
            "alive" if node["alive"] else f"silent since {when(node['heartbeat_at'])}",
            str(len(node["rooms"])),
            ", ".join(node["rooms"][:3]) + (" …" if len(node["rooms"]) > 3 else ""),
        )
        for node in cluster["nodes"]
    ]
    click.echo(table(("NODE", "URL", "STATE", "ROOMS", "ROOM IDS"), rows))


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h {minutes:02d}m {secs:02d}s" if hours or days else f"{minutes}m {secs:02d}s"
    return f"{days}d {text}" if days else text
