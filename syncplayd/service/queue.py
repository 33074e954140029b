"""A room's play queue, as people change it: who may, one change at a time, and who is told.

Theory of operation: the queue itself is a pure value (:mod:`syncplayd.core.queue`:
``add``, ``remove``, ``step``… return a new :class:`~syncplayd.core.queue.Queue`). A change
here is *load, apply, save* under the room's lock, then an event in the room's log, then
the live room (:class:`~syncplayd.service.rooms.LiveRooms`) is told, so that a socket
never hears of a queue that is not durable. The lock makes concurrent changes of one room
(a REST call, an admin command, two members' ``next`` frames) apply one after the other
to the queue the previous one saved, never to the same stale copy. It is one process's
lock: one daemon per database is the supported set-up, as for room creation.

Every transport comes here: the public API, the admin API (``syncplayctl``) and the
WebSocket's ``next``/``previous``, so one rule decides for all of them. Viewing follows
the room's visibility; changing follows ``playback_control`` (:func:`control_refusal`).

A change that changes nothing (a stale ``next``, a move to where the item is, the mode
it has) is not saved, logged nor told: that is what makes ``next`` idempotent when
every member presses it at the end of an episode.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from uuid import UUID, uuid4

import trio

from syncplayd.core import access
from syncplayd.core import queue as queues
from syncplayd.core.queue import MAX_DURATION, REPEAT_MODES, Queue, QueueError, QueueItem, Repeat
from syncplayd.core.text import CONTROL_CHARS
from syncplayd.identity import Principal
from syncplayd.service.errors import FieldError, ServiceError, forbidden, invalid, not_found
from syncplayd.service.errors import room_ended as room_ended_error
from syncplayd.storage import errors as storage_errors
from syncplayd.storage.base import Repository
from syncplayd.storage.records import NewEvent, PlaybackControl, Room

if TYPE_CHECKING:
    from syncplayd.service.rooms import LiveRooms

#: The longest title of a queue item (as a room's name).
MAX_TITLE_LENGTH = 200

_system_random = secrets.SystemRandom()
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")


def control_refusal(caller: access.Caller, control: PlaybackControl) -> ServiceError | None:
    """Why ``caller`` may not change the queue of a room with ``control``, or ``None``.

    The rule is :func:`~syncplayd.core.access.can_control_playback`. Someone who could
    control it by joining is told to join (``not-a-member``); someone who could not,
    that it is for moderators (``forbidden``, as a plain member is).
    """
    moderators_only = control is PlaybackControl.MODERATORS
    if access.can_control_playback(caller, moderators_only=moderators_only):
        return None
    if moderators_only:
        return forbidden("only moderators control playback in this room")
    return forbidden("only members control playback in this room; join it first", "not-a-member")


def clean_title(title: str | None, field_name: str = "title") -> str | None:
    """A title as stored: runs of whitespace made one space; blank is no title."""
    if title is None:
        return None
    if _CONTROL.search(title):
        raise invalid(field_name, "must not contain control characters")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_LENGTH:
        raise invalid(field_name, f"must be at most {MAX_TITLE_LENGTH} characters")
    return title or None


def valid_duration(duration: float | None) -> bool:
    """A duration the room can end at: finite, above 0, at most the protocol's last position."""
    return duration is None or (math.isfinite(duration) and 0 < duration <= MAX_DURATION)


def checked_duration(duration: float | None, field_name: str = "duration") -> float | None:
    if not valid_duration(duration):
        raise invalid(field_name, f"must be above 0 and at most {MAX_DURATION:g} seconds")
    return duration


class PlayQueue:
    """The queue of every room: reading it, changing it, and advancing it at an item's end."""

    def __init__(
        self,
        repo: Repository,
        *,
        visible_room: Callable[[Principal, UUID], Awaitable[tuple[Room, access.Caller]]],
        live: Callable[[], LiveRooms | None],
        wall_clock: Callable[[], datetime],
        random: Callable[[], float] = _system_random.random,
        new_id: Callable[[], UUID] = uuid4,
    ) -> None:
        self._repo = repo
        self._visible_room = visible_room
        self._live = live
        self._now = wall_clock
        self._random = random
        self._new_id = new_id
        self._locks: dict[UUID, trio.Lock] = {}

    # -- reading ---------------------------------------------------------------------
    async def get(self, principal: Principal, room_id: UUID) -> Queue:
        """The room's queue, for whoever may see the room (ended rooms included)."""
        await self._visible_room(principal, room_id)
        queue = await self._repo.get_queue(room_id)
        if queue is None:
            raise not_found("room")
        return queue

    # -- changes by people -------------------------------------------------------------
    async def add(
        self,
        principal: Principal,
        room_id: UUID,
        *,
        content_type: str,
        content_id: str,
        title: str | None = None,
        duration: float | None = None,
        play_next: bool = False,
    ) -> Queue:
        """Queue an item at the end, or right after the current one; into an empty queue
        it becomes the current item."""
        item = QueueItem(
            id=self._new_id(),
            content_type=content_type,
            content_id=content_id,
            title=clean_title(title),
            duration=checked_duration(duration),
            shuffle_rank=self._random(),
        )
        details = {
            "op": "add",
            "item_id": str(item.id),
            "content_type": content_type,
            "content_id": content_id,
            "play_next": play_next,
        }
        return await self._change(
            principal, room_id, lambda q: queues.add(q, item, play_next=play_next), details
        )

    async def remove(self, principal: Principal, room_id: UUID, item_id: UUID) -> Queue:
        """Take an item out; removing the current one makes the next in play order current."""
        details = {"op": "remove", "item_id": str(item_id)}
        return await self._change(principal, room_id, lambda q: queues.remove(q, item_id), details)

    async def move(self, principal: Principal, room_id: UUID, item_id: UUID, index: int) -> Queue:
        """Put an item at ``index`` of the user's order (clamped to the queue)."""
        details = {"op": "move", "item_id": str(item_id), "index": index}
        return await self._change(
            principal, room_id, lambda q: queues.move(q, item_id, index), details
        )

    async def clear(self, principal: Principal, room_id: UUID) -> Queue:
        """Remove every item but the current one."""
        return await self._change(principal, room_id, queues.clear, {"op": "clear"})

    async def play(self, principal: Principal, room_id: UUID, item_id: UUID) -> Queue:
        """Make an item the current one (the room starts it from its beginning)."""
        details = {"op": "play", "item_id": str(item_id)}
        return await self._change(principal, room_id, lambda q: queues.play(q, item_id), details)

    async def next(self, principal: Principal, room_id: UUID, current_item_id: UUID) -> Queue:
        """Go to the next item in play order, if ``current_item_id`` is still the current one.

        A stale id (someone else's ``next`` won) changes nothing and is not an error.
        """
        return await self._step(principal, room_id, current_item_id, 1)

    async def previous(self, principal: Principal, room_id: UUID, current_item_id: UUID) -> Queue:
        """Go to the previous item in play order; idempotent as :meth:`next`."""
        return await self._step(principal, room_id, current_item_id, -1)

    async def set_mode(
        self,
        principal: Principal,
        room_id: UUID,
        *,
        repeat: Repeat | None = None,
        shuffle: bool | None = None,
    ) -> Queue:
        """Set repeat (none, one, all) and shuffle; ``None`` leaves one as it is."""

        if repeat is not None and repeat not in REPEAT_MODES:
            raise invalid("repeat", f"must be one of {', '.join(REPEAT_MODES)}")

        def apply(queue: Queue) -> Queue:
            return queues.set_mode(queue, repeat=repeat, shuffle=shuffle)

        details: dict[str, object] = {"op": "mode"}
        if repeat is not None:
            details["repeat"] = repeat
        if shuffle is not None:
            details["shuffle"] = shuffle
        return await self._change(principal, room_id, apply, details)

    # -- changes by the live room --------------------------------------------------------
    async def advance(self, room_id: UUID, ended_item_id: UUID) -> Queue | None:
        """The current item ended for everyone: make current what plays after it.

        Returns the new queue, or ``None`` when nothing follows (the room stays ended)
        or ``ended_item_id`` is no longer current (an advance, a ``next`` or a ``play``
        came first: once only). With repeat one (or repeat all over one item) the same
        item plays again: the live room is told a new current item all the same.
        """
        async with self.serialized(room_id):
            before = await self._repo.get_queue(room_id)
            if before is None or before.current_id != ended_item_id:
                return None
            following = queues.after_end(before)
            if following is None:
                return None
            after = queues.play(before, following)
            try:
                room = await self._save(room_id, before, after)
            except ServiceError:
                return None  # ended or gone meanwhile: nothing left to play
            details = {"op": "advance", "from": str(ended_item_id)}
            await self._log(room_id, None, details, after)
        self._tell(room, after, current_changed=True)
        return after

    async def record_duration(self, room_id: UUID, item_id: UUID, duration: float) -> None:
        """Store an item's duration as a player measured it, unless it has one (first wins).

        Not a person's change: nothing is logged. The live room is told when the value
        was stored, so that the room knows where the current item ends.
        """
        if duration is None or not valid_duration(duration):
            return
        async with self.serialized(room_id):
            # Under the lock: a change saving a queue loaded before this would write the
            # item back without its duration.
            if not await self._repo.set_item_duration(room_id, item_id, duration):
                return
            queue = await self._repo.get_queue(room_id)
            room = await self._repo.get_room(room_id)
        if queue is not None and room is not None:
            self._tell(room, queue, current_changed=False)

    # -- the lock --------------------------------------------------------------------------
    @asynccontextmanager
    async def serialized(self, room_id: UUID) -> AsyncIterator[None]:
        """Hold the room's queue lock: for whatever else writes the queue (a room update
        that changes the current item's content)."""
        # A lock exists only while someone holds or awaits it.
        lock = self._locks.setdefault(room_id, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(room_id, None)

    # -- helpers ---------------------------------------------------------------------------
    async def _step(
        self, principal: Principal, room_id: UUID, current_item_id: UUID, direction: Literal[1, -1]
    ) -> Queue:
        details = {"op": "next" if direction == 1 else "previous", "from": str(current_item_id)}
        return await self._change(
            principal,
            room_id,
            lambda q: queues.step(q, current_item_id, direction),
            details,
        )

    async def _change(
        self,
        principal: Principal,
        room_id: UUID,
        apply: Callable[[Queue], Queue],
        details: Mapping[str, object],
    ) -> Queue:
        """Check the caller, then load, apply and save under the lock, log, and tell.

        The refusals come in this order: no such room (404), a private room the caller
        cannot see (403 ``not-a-member``), no control (403), the room has ended (410),
        then what concerns the queue (404 item, 409 full).
        """
        room, caller = await self._visible_room(principal, room_id)
        refusal = control_refusal(caller, room.playback_control)
        if refusal is not None:
            raise refusal
        if not room.is_active:
            raise room_ended_error()
        async with self.serialized(room_id):
            before = await self._repo.get_queue(room_id)
            if before is None:
                raise not_found("room")
            try:
                after = apply(before)
            except QueueError as exc:
                raise _refusal(exc) from None
            if after == before:
                return before
            room = await self._save(room_id, before, after, principal.user_id)
            # Logged under the lock, so that the log's order is the order of the changes.
            await self._log(room_id, principal.user_id, details, after)
        # No checkpoint since the lock was let go: the next change cannot tell the live
        # room before this one does.
        self._tell(room, after, current_changed=after.current_id != before.current_id)
        return after

    async def _save(
        self, room_id: UUID, before: Queue, after: Queue, by: UUID | None = None
    ) -> Room:
        if after == before:
            # Nothing to write (repeat one starts the same item again).
            room = await self._repo.get_room(room_id)
            if room is None:
                raise not_found("room")
            if not room.is_active:
                raise room_ended_error()
            return room
        try:
            return await self._repo.save_queue(room_id, after, self._now(), added_by=by)
        except storage_errors.RoomNotFound:
            raise not_found("room") from None
        except storage_errors.RoomEnded:
            raise room_ended_error() from None

    async def _log(
        self,
        room_id: UUID,
        by: UUID | None,
        details: Mapping[str, object],
        after: Queue,
    ) -> None:
        current = None if after.current_id is None else str(after.current_id)
        payload = {"by": None if by is None else str(by), **details, "current_item_id": current}
        await self._repo.log_events([NewEvent(room_id, "queue", self._now(), by, payload)])

    def _tell(self, room: Room, queue: Queue, *, current_changed: bool) -> None:
        live = self._live()
        if live is not None:
            live.queue_changed(room, queue, current_changed)


def _refusal(error: QueueError) -> ServiceError:
    if error.code == "queue-full":
        return ServiceError(409, "queue-full", error.message)
    if error.code == "not-found":
        return ServiceError(404, "not-found", error.message)
    return ServiceError(
        422, "validation-failed", error.message, [FieldError("body", error.message)]
    )
