"""``syncplayctl rooms queue``: show and change a room's play queue.

Every change goes through the same service calls as a member's (``service.queue``), so
the room's sockets hear it at once; the admin may always change it, whatever the room's
``playback_control``. ``rooms queue ROOM`` alone shows the queue: a group whose first
argument is not one of its commands runs ``show`` with it.

ITEM is a position as the table numbers it (1 is the first item, in the queue's own
order, not the shuffled play order) or an item id, whole or a unique prefix of 4 or
more of its characters. A queue holds at most 250 items, so a position has at most
three digits and a prefix at least four: the two never meet.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import click

from syncplayd.cli import ids
from syncplayd.cli.admin_client import JSON, AdminError
from syncplayd.cli.ctl.context import ROOM, CtlContext, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import Column, cell, echo_table

#: The longest position ITEM takes as one (the queue's bound, 250, has three digits).
_POSITION_DIGITS = 3
#: Shown item ids: 8 hex digits are as good as unique among 250 items, and ITEM takes them.
_SHORT_ID = 8


class NoSuchItem(AdminError):
    """ITEM names no item of the queue (a position past its end)."""


class ItemRef(click.ParamType[int | UUID | ids.Prefix]):
    """An item by position (1-based, up to three digits) or by id or id prefix."""

    name = "item"

    def __init__(self) -> None:
        self._ids = ids.IdOrPrefix("queue item")

    def convert(
        self,
        value: int | UUID | ids.Prefix | str,
        param: click.Parameter | None,
        ctx: click.Context | None,
    ) -> int | UUID | ids.Prefix:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.isdigit() and len(text) <= _POSITION_DIGITS:
            if int(text) < 1:
                self.fail("positions start at 1", param, ctx)
            return int(text)
        try:
            return self._ids.convert(text, param, ctx)
        except click.BadParameter:
            self.fail(
                f"{value!r} is neither a position in the queue (1, 2, ...) nor a queue item id"
                f" or {ids.MIN_PREFIX} or more of its first characters",
                param,
                ctx,
            )


class QueueGroup(CtlGroup):
    """``rooms queue``: ``rooms queue ROOM`` runs ``show``, the other verbs take their names."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and self.get_command(ctx, args[0]) is None and _looks_like_an_id(args[0]):
            return "show", self.commands["show"], args
        # Not a room either: click's "No such command" (with its suggestions) says more.
        return super().resolve_command(ctx, args)


def _looks_like_an_id(text: str) -> bool:
    try:
        ids.IdOrPrefix("room").convert(text, None, None)
    except click.BadParameter:
        return False
    return True


@click.group("queue", cls=QueueGroup, subcommand_metavar="ROOM | COMMAND [ARGS]...")
def queue_group() -> None:
    """Show a room's play queue (rooms queue ROOM), or change it.

    ITEM is a position as the table shows it (1 is the first) or an item id,
    whole or its first 4 or more characters. The admin may change any room's
    queue, whoever its playback_control lets do it; the room's members see
    each change at once.
    """


_ITEM = click.argument("item", metavar="ITEM", type=ItemRef())


# -- reading ---------------------------------------------------------------------------------
def duration_text(seconds: float | None) -> str:
    """``1:02:03``, ``4:05``, or ``-`` when the length is not known yet."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def item_text(item: JSON) -> str:
    """An item for a sentence: ``"Title" (movie tt0133093)``, or the content alone."""
    content = f"{item['content_type']} {item['content_id']}"
    title = item.get("title")
    return f'"{title}" ({content})' if title else content


def current(queue: JSON) -> tuple[int, JSON] | None:
    """The current item and its position (1-based), or None for an empty queue."""
    for position, item in enumerate(queue["items"], 1):
        if item["id"] == queue["current_item_id"]:
            return position, item
    return None


def summary(queue: JSON) -> str:
    """``item 2 of 5, repeat all, shuffle off`` (or ``empty``)."""
    count = len(queue["items"])
    now = current(queue)
    where = f"item {now[0]} of {count}" if now is not None else "empty"
    shuffle = "on" if queue["shuffle"] else "off"
    return f"{where}, repeat {queue['repeat']}, shuffle {shuffle}"


def _echo_queue(queue: JSON) -> None:
    click.echo(f"room {queue['room_id']}: {summary(queue)}")
    if not queue["items"]:
        return
    playing = queue["current_item_id"]
    positions = {item["id"]: n for n, item in enumerate(queue["items"], 1)}
    columns: list[Column] = [
        ("", lambda i: "▶" if i["id"] == playing else ""),
        ("#", lambda i: str(positions[i["id"]])),
        ("ITEM", lambda i: i["id"][:_SHORT_ID]),
        ("TITLE", lambda i: cell(i.get("title"), width=40)),
        ("CONTENT", lambda i: cell(f"{i['content_type']} {i['content_id']}", width=40)),
        ("DURATION", lambda i: duration_text(i.get("duration"))),
    ]
    echo_table(queue["items"], columns)


def _item(queue: JSON, wanted: int | UUID | ids.Prefix) -> JSON:
    """The item ITEM names: by position, whole id or id prefix."""
    items: list[JSON] = queue["items"]
    if isinstance(wanted, int):
        if wanted > len(items):
            raise NoSuchItem(
                f"there is no item {wanted}: the queue of room {queue['room_id']} has {len(items)}"
            )
        return items[wanted - 1]
    labelled = [
        i | {"what": i.get("title") or f"{i['content_type']} {i['content_id']}"} for i in items
    ]
    item_id = str(ids.resolve(wanted, "queue item", labelled, "id", "what"))
    for item in items:
        if item["id"] == item_id:
            return item
    raise NoSuchItem(f"there is no item {item_id} in the queue of room {queue['room_id']}")


def _change(ctl: CtlContext, queue: JSON, line: str) -> None:
    """What a change prints: one line saying what was done, then the queue as it is now."""

    def human(answer: JSON) -> None:
        click.echo(line)
        _echo_queue(answer)

    ctl.emit(queue, human)


# -- commands ----------------------------------------------------------------------------------
@queue_group.command("show")
@ROOM
@pass_ctl
def queue_show(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Show the queue in its order (▶ marks what is playing), repeat and shuffle.

    With shuffle on, the items play in an order of their own; the table keeps
    the queue's order, which is what positions refer to.
    """
    ctl.emit(ctl.client().queue(ctl.room(room_id)), _echo_queue)


@queue_group.command("add")
@ROOM
@click.argument("content_id", metavar="CONTENT_ID")
@click.option(
    "--type",
    "content_type",
    default="movie",
    show_default=True,
    help="The content type, as the media server names it (movie, episode...).",
)
@click.option("--title", help="Its title, shown in the queue and on the watch page.")
@click.option(
    "--duration",
    # The daemon checks the upper bound (the longest media it takes) and names it.
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Its length, if known: otherwise the first player to load it reports it.",
)
@click.option(
    "--next", "play_next", is_flag=True, help="Play it next: right after the current item."
)
@pass_ctl
def queue_add(
    ctl: CtlContext,
    room_id: UUID | ids.Prefix,
    content_id: str,
    content_type: str,
    title: str | None,
    duration: float | None,
    play_next: bool,
) -> None:
    """Add CONTENT_ID at the end of the queue (or next, with --next).

    Into an empty queue it becomes the current item. A queue holds at most 250
    items.
    """
    rid = ctl.room(room_id)
    answer = ctl.client().queue_add(
        rid,
        content_type=content_type,
        content_id=content_id,
        title=title,
        duration=duration,
        play_next=play_next,
    )
    added = {"content_type": content_type, "content_id": content_id, "title": title}
    _change(ctl, answer, f"added {cell(item_text(added), width=None)} to room {rid}")


@queue_group.command("remove")
@ROOM
@_ITEM
@pass_ctl
def queue_remove(
    ctl: CtlContext, room_id: UUID | ids.Prefix, item: int | UUID | ids.Prefix
) -> None:
    """Remove an item.

    Removing the current item makes the next one current (the previous one
    when it was the last), as if the room had moved on.
    """
    rid = ctl.room(room_id)
    client = ctl.client()
    gone = _item(client.queue(rid), item)
    answer = client.queue_remove(rid, UUID(gone["id"]))
    _change(ctl, answer, f"removed {cell(item_text(gone), width=None)} from room {rid}")


@queue_group.command("move")
@ROOM
@_ITEM
@click.argument("position", metavar="POSITION", type=click.IntRange(1))
@pass_ctl
def queue_move(
    ctl: CtlContext, room_id: UUID | ids.Prefix, item: int | UUID | ids.Prefix, position: int
) -> None:
    """Move an item to POSITION (1 is the first; past the end is the end)."""
    rid = ctl.room(room_id)
    client = ctl.client()
    before = client.queue(rid)
    moved = _item(before, item)
    # Past the end is the end: said here, as the API bounds the index by the longest queue.
    index = min(position, len(before["items"])) - 1
    answer = client.queue_move(rid, UUID(moved["id"]), index)
    where = {i["id"]: n for n, i in enumerate(answer["items"], 1)}.get(moved["id"], position)
    line = f"moved {cell(item_text(moved), width=None)} to position {where} in room {rid}"
    _change(ctl, answer, line)


@queue_group.command("clear")
@ROOM
@pass_ctl
def queue_clear(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Remove every item but the current one."""
    rid = ctl.room(room_id)
    answer = ctl.client().queue_clear(rid)
    _change(ctl, answer, f"cleared the queue of room {rid}")


@queue_group.command("play")
@ROOM
@_ITEM
@pass_ctl
def queue_play(ctl: CtlContext, room_id: UUID | ids.Prefix, item: int | UUID | ids.Prefix) -> None:
    """Play an item now: it becomes current and the room starts it from 0."""
    rid = ctl.room(room_id)
    client = ctl.client()
    chosen = _item(client.queue(rid), item)
    answer = client.queue_play(rid, UUID(chosen["id"]))
    _change(ctl, answer, f"room {rid} now plays {cell(item_text(chosen), width=None)}")


def _step(ctl: CtlContext, room_id: UUID | ids.Prefix, *, forward: bool) -> None:
    rid = ctl.room(room_id)
    client = ctl.client()
    before = client.queue(rid)
    if before["current_item_id"] is None:
        raise NoSuchItem(f"the queue of room {rid} is empty")
    # The service moves on only from the item named: if the room has moved on since it
    # was read (someone else pressed next), this changes nothing instead of skipping two.
    answer = client.queue_step(rid, UUID(before["current_item_id"]), forward=forward)
    now = current(answer)
    # Emptied meanwhile by someone else: nothing plays.
    what = cell(item_text(now[1]), width=None) if now is not None else "nothing"
    if answer["current_item_id"] != before["current_item_id"]:
        line = f"room {rid} now plays {what}"
    else:
        edge = "after" if forward else "before"
        line = (
            f"nothing {edge} the current item (repeat {answer['repeat']}):"
            f" room {rid} stays on {what}"
        )
    _change(ctl, answer, line)


@queue_group.command("next")
@ROOM
@pass_ctl
def queue_next(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Go to the next item in play order.

    With repeat all, the last item is followed by the first; otherwise next on
    the last item changes nothing.
    """
    _step(ctl, room_id, forward=True)


@queue_group.command("previous")
@ROOM
@pass_ctl
def queue_previous(ctl: CtlContext, room_id: UUID | ids.Prefix) -> None:
    """Go back to the previous item in play order.

    With repeat all, the first item is preceded by the last; otherwise previous
    on the first item changes nothing.
    """
    _step(ctl, room_id, forward=False)


@queue_group.command("repeat")
@ROOM
@click.argument("mode", metavar="none|one|all", type=click.Choice(["none", "one", "all"]))
@pass_ctl
def queue_repeat(ctl: CtlContext, room_id: UUID | ids.Prefix, mode: str) -> None:
    """Set what plays when an item ends: the next one, and nothing after the last
    (none); the same one again (one); the next one, and the first after the last
    (all)."""
    rid = ctl.room(room_id)
    answer = ctl.client().queue_mode(rid, repeat=mode)
    _change(ctl, answer, f"repeat is {mode} in room {rid}")


@queue_group.command("shuffle")
@ROOM
@click.argument("state", metavar="on|off", type=click.Choice(["on", "off"]))
@pass_ctl
def queue_shuffle(ctl: CtlContext, room_id: UUID | ids.Prefix, state: str) -> None:
    """Play the items in a shuffled order (on) or in the queue's order (off).

    The shuffled order is drawn once per item, so switching it on twice gives the
    same order; the queue's own order is kept for when it is switched off.
    """
    rid = ctl.room(room_id)
    answer = ctl.client().queue_mode(rid, shuffle=state == "on")
    _change(ctl, answer, f"shuffle is {state} in room {rid}")


def queue_fields(queue: JSON | None) -> list[tuple[str, Any]]:
    """What ``rooms show`` says of the queue: its state and the current item."""
    if queue is None:
        return []
    now = current(queue)
    playing = "-"
    if now is not None:
        _, item = now
        playing = item_text(item)
        if item.get("duration") is not None:
            playing += f", {duration_text(item['duration'])}"
    return [("queue", summary(queue)), ("current", playing)]


def current_duration(queue: JSON | None) -> float | None:
    """The current item's duration, when the queue is given and the duration known."""
    now = current(queue) if queue is not None else None
    if now is None:
        return None
    duration: float | None = now[1].get("duration")
    return duration
