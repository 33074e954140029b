"""Write-behind persistence for what changes often: playback, presence and events.

Heartbeats and playback commands must never wait for the database. The live
rooms hand their changes to the :class:`Persister`, which coalesces them (only
the newest playback of a room, and the newest presence of a member, matter) and
writes them in batches. A database outage delays the writes, it does not lose
them: pending work is kept, within bounds, and retried with a backoff.

The bounds, and what happens beyond them:

* playback: one entry per room (the newest version), so at most one per live room;
* presence (``is_connected``/``last_seen_at``): one entry per (room, user), at most
  ``MAX_PENDING_PRESENCE``; beyond it the oldest entry is dropped; written up to
  ``MAX_BATCH_PRESENCE`` per transaction;
* events: at most ``MAX_PENDING_EVENTS``; beyond it the oldest event is dropped.

Drops are counted (``dropped_events``, ``dropped_presence``) and logged once per
outage. What is written through instead (rooms, membership, chat, invitations)
is never queued here: while the database is down it is refused, not acknowledged.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import trio

from syncplayd.clocks import monotonic
from syncplayd.storage.base import Repository
from syncplayd.storage.errors import RoomNotFound, StorageError, StorageUnavailable
from syncplayd.storage.records import NewEvent, Playback, PresenceUpdate

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.5
MAX_BATCH_EVENTS = 500
MAX_BATCH_PRESENCE = 500
#: Events kept while the database is down; the oldest go first beyond this.
MAX_PENDING_EVENTS = 20_000
#: Presence changes kept while the database is down (one per room and user).
MAX_PENDING_PRESENCE = 20_000
MAX_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Presence:
    """A member's latest presence in a room, as ``participants`` stores it."""

    connected: bool
    seen_at: datetime


class Persister:
    """Collects playback states, presence and events; ``run`` writes them behind."""

    def __init__(self, repo: Repository, *, flush_interval: float = FLUSH_INTERVAL_SECONDS):
        self._repo = repo
        self._flush_interval = flush_interval
        self._playback: dict[UUID, Playback] = {}
        self._presence: dict[tuple[UUID, UUID], Presence] = {}
        self._events: deque[NewEvent] = deque(maxlen=MAX_PENDING_EVENTS)
        self._wakeup = trio.Event()
        self.dropped_events = 0
        self.dropped_presence = 0
        self.failures = 0
        #: trio time of the first failed write of the current outage, if any.
        self.failing_since: float | None = None
        self._drop_reported = False

    # -- producers (never block) ---------------------------------------------------
    def playback(self, room_id: UUID, playback: Playback) -> None:
        current = self._playback.get(room_id)
        if current is None or playback.version >= current.version:
            self._playback[room_id] = playback
        self._wakeup.set()

    def presence(self, room_id: UUID, user_id: UUID, connected: bool, seen_at: datetime) -> None:
        key = (room_id, user_id)
        self._presence.pop(key, None)  # re-inserted last: the dict's order is age order
        if len(self._presence) >= MAX_PENDING_PRESENCE:
            del self._presence[next(iter(self._presence))]
            self.dropped_presence += 1
            self._report_drop("presence changes")
        self._presence[key] = Presence(connected, seen_at)
        self._wakeup.set()

    def event(self, event: NewEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped_events += 1
            self._report_drop("events")
        self._events.append(event)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._playback) + len(self._presence) + len(self._events)

    def _report_drop(self, what: str) -> None:
        if not self._drop_reported:  # once per outage: the counters hold the rest
            self._drop_reported = True
            log.warning(
                "write-behind queue full: dropping the oldest %s until the database is back", what
            )

    # -- the writer ----------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write pending changes every ``flush_interval`` until cancelled, then flush."""
        task_status.started()
        backoff = self._flush_interval
        try:
            while True:
                await self._wakeup.wait()
                # Let a burst of changes gather into one batch.
                await trio.sleep(self._flush_interval)
                self._wakeup = trio.Event()
                if await self.flush():
                    backoff = self._flush_interval
                else:
                    backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                    self._wakeup.set()
                    await trio.sleep(backoff)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.flush()

    async def flush(self) -> bool:
        """Write everything pending now; return whether it all went in.

        The first :class:`StorageUnavailable` ends the attempt (the database is down:
        every other write would wait for it too) and keeps everything for the next.
        """
        try:
            await self._flush_playback()
            await self._flush_presence()
            await self._flush_events()
        except StorageUnavailable as exc:
            self.failures += 1
            if self.failing_since is None:
                self.failing_since = monotonic()
                log.warning(
                    "database unavailable: %d writes wait (retried with a backoff of up to"
                    " %.0f s): %s",
                    self.pending,
                    MAX_BACKOFF_SECONDS,
                    exc,
                )
            return False
        if self.failing_since is not None:
            log.info(
                "database back: pending writes stored after %.1f s (%d events and %d presence"
                " changes were dropped meanwhile)",
                monotonic() - self.failing_since,
                self.dropped_events,
                self.dropped_presence,
            )
            self.failing_since = None
            self._drop_reported = False
        return True

    async def _flush_playback(self) -> None:
        for room_id, playback in list(self._playback.items()):
            try:
                await self._repo.update_playback(room_id, playback)
            except StorageUnavailable:
                raise
            except StorageError as exc:
                # Not an outage: this write can never succeed; retrying it would
                # hold up every other one.
                log.warning("playback of room %s dropped: %s", room_id, exc)
            if self._playback.get(room_id) is playback:
                del self._playback[room_id]

    async def _flush_presence(self) -> None:
        # In batches, each one transaction: a watch party arriving changes thousands of
        # members' presence, and one write each would queue them all before the joins'
        # own writes (SQLite has one writer).
        pending = list(self._presence.items())
        for start in range(0, len(pending), MAX_BATCH_PRESENCE):
            batch = pending[start : start + MAX_BATCH_PRESENCE]
            try:
                await self._repo.record_presence([_update(key, p) for key, p in batch])
            except StorageUnavailable:
                raise
            except StorageError:
                # Not an outage: one change is in the way; write them one by one and
                # drop only what can never go in.
                for key, presence in batch:
                    try:
                        await self._repo.record_presence([_update(key, presence)])
                    except StorageUnavailable:
                        raise
                    except StorageError as exc:
                        self.dropped_presence += 1
                        log.warning("presence of %s in room %s dropped: %s", key[1], key[0], exc)
            for key, presence in batch:
                if self._presence.get(key) is presence:
                    del self._presence[key]

    async def _flush_events(self) -> None:
        while self._events:
            batch = [self._events[i] for i in range(min(MAX_BATCH_EVENTS, len(self._events)))]
            try:
                await self._repo.log_events(batch)
            except StorageUnavailable:
                raise
            except StorageError:
                # One event is in the way (a purged room's events have nowhere to go):
                # write them one by one and keep the others.
                for event in batch:
                    await self._write_alone(event)
                    self._done(event)
                continue
            for event in batch:
                self._done(event)

    async def _write_alone(self, event: NewEvent) -> None:
        try:
            await self._repo.log_events([event])
        except StorageUnavailable:
            raise
        except StorageError as exc:
            self.dropped_events += 1
            if not isinstance(exc, RoomNotFound):
                log.warning("event %s of room %s dropped: %s", event.type, event.room_id, exc)

    def _done(self, event: NewEvent) -> None:
        # A full queue may have dropped it (from the left) while it was being written.
        if self._events and self._events[0] is event:
            self._events.popleft()


def _update(key: tuple[UUID, UUID], presence: Presence) -> PresenceUpdate:
    room_id, user_id = key
    return PresenceUpdate(room_id, user_id, presence.connected, presence.seen_at)
