"""``syncplayctl events``: a room's event log, once or followed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.ctl.context import LIMIT, OFFSET, ROOM, CtlContext, pass_ctl, who
from syncplayd.cli.output import cell, echo_json, when

FOLLOW_INTERVAL_SECONDS = 1.0
FOLLOW_PAGE = 1000


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


@click.command()
@ROOM
@LIMIT
@OFFSET
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
