"""Write-behind persistence for what changes often: playback state and events.

Heartbeats and playback commands must never wait for the database. The live
rooms hand their changes to the :class:`Persister`, which coalesces them (only
the newest playback of a room matters) and writes them in batches. A database
outage delays the writes, it does not lose them: pending work is kept, within
a bound, and retried with backoff.
"""

from __future__ import annotations

import logging
from collections import deque
from uuid import UUID

import trio

from syncplayd.storage.base import Repository
from syncplayd.storage.errors import RoomNotFound, StorageError
from syncplayd.storage.records import NewEvent, Playback

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.5
MAX_BATCH_EVENTS = 500
#: Events kept while the database is down; the oldest go first beyond this.
MAX_PENDING_EVENTS = 20_000
MAX_BACKOFF_SECONDS = 5.0


class Persister:
    """Collects playback states and events; ``run`` writes them behind."""

    def __init__(self, repo: Repository, *, flush_interval: float = FLUSH_INTERVAL_SECONDS):
        self._repo = repo
        self._flush_interval = flush_interval
        self._playback: dict[UUID, Playback] = {}
        self._events: deque[NewEvent] = deque(maxlen=MAX_PENDING_EVENTS)
        self._wakeup = trio.Event()
        self.dropped_events = 0
        self.failures = 0

    # -- producers (never block) ---------------------------------------------------
    def playback(self, room_id: UUID, playback: Playback) -> None:
        current = self._playback.get(room_id)
        if current is None or playback.version >= current.version:
            self._playback[room_id] = playback
        self._wakeup.set()

    def event(self, event: NewEvent) -> None:
        if len(self._events) == self._events.maxlen:
            self.dropped_events += 1
        self._events.append(event)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._playback) + len(self._events)

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
        """Write everything pending now; return whether it all went in."""
        ok = True
        for room_id, playback in list(self._playback.items()):
            try:
                await self._repo.update_playback(room_id, playback)
            except StorageError as exc:
                ok = False
                self.failures += 1
                log.warning("playback of room %s not stored yet: %s", room_id, exc)
                continue
            if self._playback.get(room_id) is playback:
                del self._playback[room_id]
        while self._events and ok:
            batch = [self._events[i] for i in range(min(MAX_BATCH_EVENTS, len(self._events)))]
            try:
                await self._write_batch(batch)
            except StorageError as exc:
                ok = False
                self.failures += 1
                log.warning("%d events not stored yet: %s", len(self._events), exc)
                break
            for _ in batch:
                self._events.popleft()
        return ok

    async def _write_batch(self, batch: list[NewEvent]) -> None:
        try:
            await self._repo.log_events(batch)
        except RoomNotFound:
            # A purged room's events have nowhere to go: keep the others.
            for event in batch:
                try:
                    await self._repo.log_events([event])
                except RoomNotFound:
                    self.dropped_events += 1
