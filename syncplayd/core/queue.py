"""A room's shared play queue: its items, the current one, and the play modes.

Theory of operation
===================

A :class:`Queue` is a value: every operation is a function that takes a queue and
returns a new one (or raises :class:`QueueError` and changes nothing). The service
loads the queue from storage, applies one function under the room's lock, and saves
the result; the engine only ever sees the current item. Nothing here reads a clock
or draws a random number: an item's ``shuffle_rank`` is drawn by whoever makes the
item (the service, storage for a room's first item).

Two orders:

* the *user's order*, ``Queue.items``: what people arranged (add, move, remove);
* the *play order*, :meth:`Queue.play_order`: what next, previous and the end of an
  item follow. Without shuffle it is the user's order; with shuffle it is the items
  sorted by their ``shuffle_rank``. Ranks are drawn once, when an item is added, so
  a shuffled order is stable: turning shuffle off and on again gives back the same
  order, and adding an item does not reshuffle the others.

Invariants (checked by :class:`Queue` itself, and by the hypothesis properties of
``tests/core/test_queue.py`` over random sequences of operations):

* ``current_id`` is ``None`` exactly when there are no items, and otherwise the id of
  one of them;
* item ids are unique, and a queue never grows past :data:`MAX_QUEUE_ITEMS`;
* next and previous name the item the caller believes is current (as Jellyfin's
  ``NextItem`` does): when that is no longer the current item, because someone else's
  next got there first, nothing changes. Two members pressing next at once advance
  the room once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Final, Literal
from uuid import UUID

__all__ = [
    "MAX_DURATION",
    "MAX_QUEUE_ITEMS",
    "REPEAT_MODES",
    "SLOW_POLICIES",
    "Queue",
    "QueueError",
    "QueueItem",
    "Repeat",
    "SlowPolicy",
    "add",
    "after_end",
    "clear",
    "move",
    "play",
    "remove",
    "set_mode",
    "step",
    "with_duration",
]

#: What happens at the end of the play order: stop, play the current item again, or wrap.
Repeat = Literal["none", "one", "all"]
REPEAT_MODES: Final[tuple[Repeat, ...]] = ("none", "one", "all")

#: A room's ``wait_for_slow_members``: whether the room waits for a member whose buffering
#: holds it up: always (until the ready timeout), within the slow-member policy, or never.
SlowPolicy = Literal["always", "policy", "never"]
SLOW_POLICIES: Final[tuple[SlowPolicy, ...]] = ("always", "policy", "never")

#: Syncplay's limit on a shared playlist.
MAX_QUEUE_ITEMS: Final = 250
#: The longest duration an item may have: the protocol's largest position
#: (``syncplayd.core.protocol.MAX_POSITION``, not imported: the protocol may import this).
MAX_DURATION: Final = 7 * 24 * 3600.0


class QueueError(Exception):
    """An operation the queue refuses; the queue is unchanged.

    Codes: ``queue-full`` (adding past :data:`MAX_QUEUE_ITEMS`; REST 409), ``not-found``
    (no item with that id; REST 404), ``bad-message`` (a value out of range).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_duration(duration: float) -> None:
    if not (math.isfinite(duration) and 0.0 < duration <= MAX_DURATION):
        raise QueueError(
            "bad-message", f"a duration must be over 0 and at most {MAX_DURATION:.0f} seconds"
        )


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One entry of a queue.

    ``duration`` (seconds) is ``None`` until someone gives or measures it.
    ``shuffle_rank`` in [0, 1) places the item in the shuffled play order; the maker
    of the item draws it uniformly at random.

    Raises:
        QueueError: ``bad-message``: a duration that is not finite, not over 0 or over
            :data:`MAX_DURATION`, or a rank outside [0, 1).
    """

    id: UUID
    content_type: str
    content_id: str
    title: str | None
    duration: float | None
    shuffle_rank: float

    def __post_init__(self) -> None:
        if self.duration is not None:
            _check_duration(self.duration)
        if not 0.0 <= self.shuffle_rank < 1.0:  # also refuses NaN
            raise QueueError("bad-message", "a shuffle rank must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class Queue:
    """A room's queue: the items in the user's order, which one is current, and the modes.

    Raises:
        ValueError: the invariants of the module docs do not hold (a bug of the caller's).
    """

    items: tuple[QueueItem, ...]
    current_id: UUID | None
    repeat: Repeat = "none"
    shuffle: bool = False

    def __post_init__(self) -> None:
        ids = {item.id for item in self.items}
        if len(ids) != len(self.items):
            raise ValueError("queue item ids must be unique")
        if (self.current_id is None) != (not self.items):
            raise ValueError("a queue has a current item exactly when it has items")
        if self.current_id is not None and self.current_id not in ids:
            raise ValueError(f"the current item {self.current_id} is not in the queue")
        if self.repeat not in REPEAT_MODES:
            raise ValueError(f"unknown repeat mode {self.repeat!r}")

    @property
    def current(self) -> QueueItem | None:
        """The item the room plays (or ended at); ``None`` only for an empty queue."""
        return None if self.current_id is None else self.find(self.current_id)

    def find(self, item_id: UUID) -> QueueItem | None:
        """The item with this id, or ``None``."""
        return next((item for item in self.items if item.id == item_id), None)

    def play_order(self) -> tuple[QueueItem, ...]:
        """The items in the order they play: the user's, or by rank when shuffled."""
        if not self.shuffle:
            return self.items
        # The id breaks ties, so that every node and every reload agree on the order.
        return tuple(sorted(self.items, key=lambda item: (item.shuffle_rank, item.id)))

    def next_id(self) -> UUID | None:
        """What :func:`after_end` would play: shown to people as "playing next"."""
        return after_end(self)


def _require(queue: Queue, item_id: UUID) -> QueueItem:
    item = queue.find(item_id)
    if item is None:
        raise QueueError("not-found", "no such item in the queue")
    return item


def _position(order: tuple[QueueItem, ...], item_id: UUID) -> int:
    return next(index for index, item in enumerate(order) if item.id == item_id)


def add(queue: Queue, item: QueueItem, *, play_next: bool) -> Queue:
    """Add ``item`` at the end, or with ``play_next`` right after the current item.

    "Right after" holds in both orders: with shuffle on, the item's rank is moved
    between the current item's and the next one's, so it plays next there too. The
    first item of an empty queue becomes current.

    Raises:
        QueueError: ``queue-full``; ``bad-message`` if the id is in the queue already.
    """
    if len(queue.items) >= MAX_QUEUE_ITEMS:
        raise QueueError("queue-full", f"a queue holds at most {MAX_QUEUE_ITEMS} items")
    if queue.find(item.id) is not None:
        raise QueueError("bad-message", "the queue has an item with this id already")
    current = queue.current_id
    if current is None:
        return dataclasses.replace(queue, items=(item,), current_id=item.id)
    if not play_next:
        return dataclasses.replace(queue, items=(*queue.items, item))
    at = _position(queue.items, current) + 1
    if not queue.shuffle:
        return dataclasses.replace(queue, items=(*queue.items[:at], item, *queue.items[at:]))
    return _add_next_shuffled(queue, item, current, at)


def _add_next_shuffled(queue: Queue, item: QueueItem, current: UUID, at: int) -> Queue:
    order = queue.play_order()
    after = _position(order, current) + 1
    low = order[after - 1].shuffle_rank
    high = order[after].shuffle_rank if after < len(order) else 1.0
    middle = (low + high) / 2
    if low < middle < high:
        ranked = {item.id: middle}
    else:
        # The gap is spent (some fifty play-nexts into one place): spread every rank
        # evenly again, keeping the play order, and put the item in its place.
        wanted = [*order[:after], item, *order[after:]]
        ranked = {entry.id: index / len(wanted) for index, entry in enumerate(wanted)}

    def rerank(entry: QueueItem) -> QueueItem:
        rank = ranked.get(entry.id)
        return entry if rank is None else dataclasses.replace(entry, shuffle_rank=rank)

    items = (*queue.items[:at], item, *queue.items[at:])
    return dataclasses.replace(queue, items=tuple(rerank(entry) for entry in items))


def remove(queue: Queue, item_id: UUID) -> Queue:
    """Remove an item.

    Removing the current item makes the next one in play order current, or at the end
    of the order the previous one, or for the last item nothing (an empty queue).

    Raises:
        QueueError: ``not-found``.
    """
    _require(queue, item_id)
    current = queue.current_id
    if item_id == current:
        order = queue.play_order()
        here = _position(order, item_id)
        if here + 1 < len(order):
            current = order[here + 1].id
        elif here > 0:
            current = order[here - 1].id
        else:
            current = None
    items = tuple(item for item in queue.items if item.id != item_id)
    return dataclasses.replace(queue, items=items, current_id=current)


def move(queue: Queue, item_id: UUID, index: int) -> Queue:
    """Move an item to ``index`` of the user's order (clamped to the queue); the
    current item stays current.

    Raises:
        QueueError: ``not-found``.
    """
    item = _require(queue, item_id)
    rest = [entry for entry in queue.items if entry.id != item_id]
    rest.insert(max(0, min(index, len(rest))), item)
    return dataclasses.replace(queue, items=tuple(rest))


def clear(queue: Queue) -> Queue:
    """Remove every item but the current one (which keeps playing)."""
    current = queue.current
    return dataclasses.replace(queue, items=() if current is None else (current,))


def play(queue: Queue, item_id: UUID) -> Queue:
    """Make an item current.

    Raises:
        QueueError: ``not-found``.
    """
    _require(queue, item_id)
    return dataclasses.replace(queue, current_id=item_id)


def step(queue: Queue, expected_current: UUID, direction: Literal[1, -1]) -> Queue:
    """Go to the next (``1``) or previous (``-1``) item in play order.

    Returns ``queue`` itself, unchanged, when ``expected_current`` is not the current
    item (a stale request: someone else's step got there first), and at either end of
    the order unless repeat is ``all``, which wraps around.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, not {direction!r}")
    if queue.current_id is None or expected_current != queue.current_id:
        return queue
    order = queue.play_order()
    target = _position(order, queue.current_id) + direction
    if not 0 <= target < len(order):
        if queue.repeat != "all":
            return queue
        target %= len(order)
    return dataclasses.replace(queue, current_id=order[target].id)


def after_end(queue: Queue) -> UUID | None:
    """The item to play when the current one has ended, or ``None``: the room stays ended.

    Repeat ``one`` plays the current item again; otherwise the next in play order,
    wrapping to the first with repeat ``all``.
    """
    if queue.current_id is None:
        return None
    if queue.repeat == "one":
        return queue.current_id
    order = queue.play_order()
    following = _position(order, queue.current_id) + 1
    if following < len(order):
        return order[following].id
    return order[0].id if queue.repeat == "all" else None


def with_duration(queue: Queue, item_id: UUID, duration: float) -> Queue:
    """Give an item its duration; the first value wins.

    Returns ``queue`` itself when the item has a duration already, or is no longer in
    the queue (a player's report that crossed the item's removal).

    Raises:
        QueueError: ``bad-message``: a duration out of range.
    """
    _check_duration(duration)
    item = queue.find(item_id)
    if item is None or item.duration is not None:
        return queue
    timed = dataclasses.replace(item, duration=duration)
    items = tuple(timed if entry.id == item_id else entry for entry in queue.items)
    return dataclasses.replace(queue, items=items)


def set_mode(queue: Queue, *, repeat: Repeat | None = None, shuffle: bool | None = None) -> Queue:
    """Change the repeat and shuffle modes (``None`` leaves one as it is).

    The current item stays current whatever the order becomes.

    Raises:
        QueueError: ``bad-message``: an unknown repeat mode.
    """
    if repeat is not None and repeat not in REPEAT_MODES:
        raise QueueError("bad-message", f"repeat must be one of {', '.join(REPEAT_MODES)}")
    return dataclasses.replace(
        queue,
        repeat=queue.repeat if repeat is None else repeat,
        shuffle=queue.shuffle if shuffle is None else shuffle,
    )
