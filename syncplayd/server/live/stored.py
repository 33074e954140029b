"""A live room's engine state from storage, and its playback back to storage.

The room engine (:mod:`syncplayd.core.room`) knows nothing of storage records; a live
room starts from the stored room and its queue (``initial_state``) and writes its
playback behind as a storage record (``stored_playback``). Kept apart from
:mod:`syncplayd.server.live.live_room`, which runs the room.
"""

from __future__ import annotations

from uuid import UUID

from syncplayd.clocks import ServerClock
from syncplayd.config import Settings
from syncplayd.core import room as engine
from syncplayd.core.queue import Queue
from syncplayd.storage.records import Playback as StoredPlayback
from syncplayd.storage.records import PlaybackState, Room


def sync_config(settings: Settings) -> engine.SyncConfig:
    """The engine's tunables from the daemon's settings."""
    sync = settings.syncplay.sync
    return engine.SyncConfig(
        threshold_seconds=sync.threshold_seconds,
        ready_timeout_seconds=sync.ready_timeout_seconds,
        disconnect_timeout_seconds=sync.disconnect_timeout_seconds,
        max_latency_ms=sync.max_latency_ms,
        slow_member_waits=sync.slow_member_waits,
        slow_member_window_seconds=sync.slow_member_window_seconds,
    )


def initial_state(room: Room, queue: Queue, settings: Settings, now: float) -> engine.RoomState:
    """The engine state for a room loaded from storage (resuming where it stood).

    The queue's current item is the room's item; a room restored at or past that
    item's end comes back ended, without asking to advance (it may have ended long
    ago: people press next, or play, when they are back).
    """
    current = queue.current
    duration = None if current is None else current.duration
    stored = room.playback
    playback = None
    if stored.updated_at is not None or stored.version > 0:
        anchor = stored.updated_at.timestamp() if stored.updated_at else now
        playback = engine.restore_playback(
            state=stored.state.value,
            position=stored.position,
            rate=stored.rate,
            version=stored.version,
            elapsed_seconds=now - anchor,
            now=now,
            duration=duration,
        )
    return engine.new_room(
        str(room.id),
        playback,
        sync_config(settings),
        room.playback_control.value,
        item_id=None if current is None else str(current.id),
        duration=duration,
        wait_for_slow_members=room.wait_for_slow_members,
        start_when_ready=room.start_when_ready,
    )


def stored_playback(playback: engine.Playback, user_id: str | None) -> StoredPlayback:
    """The engine's playback as storage keeps it (written behind by the persister)."""
    return StoredPlayback(
        state=PlaybackState(playback.state),
        position=playback.position,
        rate=playback.rate,
        version=playback.version,
        updated_at=ServerClock.to_datetime(playback.anchor),
        updated_by=user_uuid(user_id),
    )


def user_uuid(value: str | None) -> UUID | None:
    """A user id of the engine's (a string, ``None`` for the server) as storage keeps it."""
    return UUID(value) if value else None
