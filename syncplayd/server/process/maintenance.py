"""Housekeeping the daemon does by itself: end idle rooms, purge what is old.

A room is idle when nobody is connected and neither its settings nor its
playback changed for ``min(rooms.max_room_age_hours, cleanup.inactive_rooms_hours)``;
such a room is ended (not deleted: its history stays readable for a while). Invitations
are deleted ``cleanup.expired_invitations_hours`` after they expired, so that
for a while an invitee still gets "expired" rather than "unknown".

Retention is what bounds the database against one busy (or hostile) user, together
with the service's per-user rates: rooms ended ``cleanup.ended_rooms_days`` ago are
deleted with everything in them, and the event log keeps ``cleanup.events_days`` and
at most ``cleanup.max_events_per_room`` events per room. The failed-attempt windows
that several nodes count in the database (``service/attempts.py``) are deleted a day
after they opened (or after the window, if that is longer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import trio

from syncplayd.clocks import utc_now
from syncplayd.config import SyncplaySettings
from syncplayd.storage.base import Repository
from syncplayd.storage.errors import StorageError

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 300.0
BATCH = 500
#: The least age at which a failed-attempt window is deleted: far past any sensible
#: window, so that a shorter window set by a reload never frees a guesser's open one.
ATTEMPT_WINDOW_KEEP = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one maintenance pass did."""

    ended_rooms: list[UUID]
    purged_invitations: int
    purged_rooms: int = 0
    purged_events: int = 0
    purged_restrictions: int = 0
    purged_attempt_windows: int = 0


class Maintenance:
    """Runs the sweeps; the clock and the live-room hooks are injected."""

    def __init__(
        self,
        repo: Repository,
        settings: SyncplaySettings,
        *,
        is_busy: Callable[[UUID], bool],
        room_ended: Callable[[UUID], None],
        wall_clock: Callable[[], datetime] = utc_now,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self._repo = repo
        self._settings = settings
        self._is_busy = is_busy
        self._room_ended = room_ended
        self._now = wall_clock
        self._interval = interval

    @property
    def idle_limit(self) -> timedelta:
        hours = min(
            self._settings.rooms.max_room_age_hours, self._settings.cleanup.inactive_rooms_hours
        )
        return timedelta(hours=hours)

    async def sweep(self) -> Sweep:
        """One pass: end idle rooms nobody is in, purge long-expired invitations, rooms
        ended before the retention, old events and expired bans and mutes."""
        now = self._now()
        ended: list[UUID] = []
        for room_id in await self._repo.list_inactive_rooms(now - self.idle_limit, BATCH):
            if self._is_busy(room_id):
                continue  # people are connected: paused for a long time is still in use
            if await self._repo.end_room(room_id, now):
                ended.append(room_id)
                self._room_ended(room_id)
        cleanup = self._settings.cleanup
        keep = timedelta(hours=cleanup.expired_invitations_hours)
        purged = await self._repo.purge_expired_invitations(now - keep)
        # In batches, so that no one transaction holds the database for long.
        ended_before = now - timedelta(days=cleanup.ended_rooms_days)
        rooms = 0
        while (batch := await self._repo.purge_ended_rooms(ended_before, BATCH)) > 0:
            rooms += batch
            if batch < BATCH:
                break
        events = await self._repo.purge_events(
            now - timedelta(days=cleanup.events_days), cleanup.max_events_per_room
        )
        # An expired ban or mute restricts nothing; the event log keeps the record of it.
        restrictions = await self._repo.purge_expired_restrictions(now)
        window = timedelta(seconds=self._settings.rooms.failed_join_window_seconds)
        windows = await self._repo.purge_attempts(now - max(window, ATTEMPT_WINDOW_KEEP))
        if ended or purged or rooms or events or restrictions or windows:
            log.info(
                "maintenance: ended %d idle rooms, purged %d invitations, %d ended rooms,"
                " %d events, %d expired bans and mutes and %d failed-attempt windows",
                len(ended),
                purged,
                rooms,
                events,
                restrictions,
                windows,
            )
        return Sweep(ended, purged, rooms, events, restrictions, windows)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep every ``interval`` seconds until cancelled; a failed sweep is retried later."""
        task_status.started()
        while True:
            try:
                await self.sweep()
            except StorageError as exc:
                log.warning("maintenance sweep failed, retrying later: %s", exc)
            await trio.sleep(self._interval)
