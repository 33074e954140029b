"""A model of a local media player that follows the room's playback.

Theory of operation
-------------------
The player is a sequence of *segments* (:class:`PlayerState`): each says "from
local time ``since`` on, the media is ``playing`` (or not) at ``rate``, and at
local time ``anchor`` it was at ``position``". The server's playback messages
are scheduled: a change takes effect at ``execute_at`` (server time), so
:meth:`LocalPlayer.apply_playback` converts that instant to the local clock and
queues a *pending* segment. Queries (:meth:`LocalPlayer.position`,
:meth:`LocalPlayer.state_at`) are pure: they look at the committed segment and
at any pending segment already due, and never mutate anything.
:meth:`LocalPlayer.update` commits due segments and calls the
:meth:`LocalPlayer.on_change` hook, which is where a real player is driven; the
:class:`~syncplayd.client.SyncClient` calls it at the right instants.

Versions order the server's segments: a playback older than the newest one known
is ignored, and a newer one supersedes every pending segment that would start at
or after it. A segment of the *same* version (a ``sync`` command, a resync)
re-anchors the player on the authoritative state.

Hooking a real player in (an mpv shim)
--------------------------------------
Subclass :class:`LocalPlayer`, override :meth:`~LocalPlayer.on_change` to drive
the player and, if it can report one, :meth:`~LocalPlayer.position` to return
its real position (the drift correction then measures the real player)::

    class MpvPlayer(LocalPlayer):
        def __init__(self, mpv: MPV) -> None:
            super().__init__()
            self.mpv = mpv

        def position(self, now: float | None = None) -> float:
            return float(self.mpv.time_pos or 0.0)

        def on_change(self, change: PlayerChange) -> None:
            if change.reason == "local":  # the user did it in mpv already
                return
            self.mpv.pause = not change.playing
            self.mpv.speed = change.rate
            if abs(self.position() - change.position) > 0.1:
                self.mpv.seek(change.position, "absolute")

and report the user's own actions to the room with ``client.play()``,
``client.pause()``, ``client.seek()`` (and ``buffering()``/``ready()`` while mpv
loads), not with the local methods: the room's broadcast comes back to every
member, this one included, and moves the player at the scheduled instant.
"""

from __future__ import annotations

from collections.abc import Callable

from syncplayd.clocks import monotonic
from syncplayd.core.clock import DriftAction, classify_drift, position_at
from syncplayd.core.protocol import PlaybackWire, SyncSettings

from ._segments import PlayerChange, PlayerState

__all__ = ["LocalPlayer", "drift_action", "room_position_at"]


class LocalPlayer:
    """A media player model on an injectable local clock.

    Args:
        clock: the local clock, in seconds (default :func:`syncplayd.clocks.monotonic`);
            used when a method's ``now`` is omitted.
        max_pending: how many scheduled changes may wait at once; beyond it the
            earliest is committed early (a bound, never reached in practice:
            each new version drops the pending ones it supersedes).

    Example::

        player = LocalPlayer(clock=lambda: 100.0)
        player.apply_playback(playback, execute_at=50.2, server_to_local=lambda t: t + 50)
        player.position(100.5)   # still the old state; the change starts at 100.2
    """

    def __init__(self, clock: Callable[[], float] | None = None, *, max_pending: int = 8) -> None:
        self._clock = clock or monotonic
        self._max_pending = max(1, max_pending)
        self._state = PlayerState(state="paused", position=0.0, anchor=float("-inf"))
        self._pending: list[PlayerState] = []  # sorted by ``since`` and by version

    # -- queries (pure) ----------------------------------------------------------------
    def now(self) -> float:
        """The local clock."""
        return self._clock()

    @property
    def state(self) -> PlayerState:
        """The committed segment (ignores pending ones, even when due)."""
        return self._state

    def state_at(self, now: float | None = None) -> PlayerState:
        """The segment in effect at ``now``: the latest due pending one, or the committed one."""
        t = self.now() if now is None else now
        current = self._state
        for segment in self._pending:
            if segment.since <= t:
                current = segment
        return current

    def position(self, now: float | None = None) -> float:
        """The media position at local time ``now`` (default: the clock). Adapters may override."""
        t = self.now() if now is None else now
        return self.state_at(t).position_at(t)

    def is_playing(self, now: float | None = None) -> bool:
        """Whether the player is (or is scheduled to be, from its anchor) playing at ``now``."""
        return self.state_at(now).playing

    @property
    def playing(self) -> bool:
        """:meth:`is_playing` now."""
        return self.is_playing()

    @property
    def rate(self) -> float:
        """The nominal rate now (the room's rate)."""
        return self.state_at().nominal_rate

    @property
    def effective_rate(self) -> float:
        """The rate the media really advances at now (with the drift correction)."""
        return self.state_at().rate

    @property
    def correction(self) -> float:
        """The current gentle drift correction factor (1.0: none)."""
        return self.state_at().correction

    @property
    def version(self) -> int:
        """The room playback version the player follows now (reported in heartbeats)."""
        return self.state_at().version

    def end_time(self, now: float | None = None) -> float | None:
        """The local time the media in effect at ``now`` reaches its end, if it plays there."""
        return self.state_at(now).end_time()

    def at_end(self, now: float | None = None) -> bool:
        """Whether the player stands at the end of its item at ``now`` (it stops there)."""
        t = self.now() if now is None else now
        return self.state_at(t).at_end(t)

    @property
    def item_id(self) -> str | None:
        """The queue item the player follows now (the room's ``playback.item_id``)."""
        return self.state_at().item_id

    @property
    def pending_at(self) -> float | None:
        """The local time of the next scheduled change, if any."""
        return self._pending[0].since if self._pending else None

    @property
    def known_version(self) -> int:
        """The newest version seen, pending ones included."""
        return self._pending[-1].version if self._pending else self._state.version

    # -- room changes ------------------------------------------------------------------
    def apply_playback(
        self,
        playback: PlaybackWire,
        execute_at: float,
        server_to_local: Callable[[float], float],
        *,
        reason: str = "playback",
        force: bool = False,
    ) -> bool:
        """Schedule the room's ``playback`` to take effect at server time ``execute_at``.

        Args:
            playback: the room's playback (``position`` holds at server time ``anchor``).
            execute_at: server time at which the change applies (the past: at once).
            server_to_local: converts a server time to the local clock (the clock
                estimator's current offset).
            reason: recorded in the segment and in the :class:`PlayerChange`.
            force: a (re)join snapshot: drop every pending change and accept any
                version (a restarted server may number versions anew).

        Returns:
            ``False`` when ``playback`` is older than a version already known
            (ignored), else ``True``. Call :meth:`update` at :attr:`pending_at`.
        """
        if force:
            self._pending.clear()
        elif playback.version < self.known_version:
            return False
        since = server_to_local(execute_at)
        segment = PlayerState(
            state=playback.state,
            position=playback.position,
            anchor=server_to_local(playback.anchor),
            nominal_rate=playback.rate,
            version=playback.version,
            since=since,
            reason=reason,
            item_id=playback.item_id,
            duration=playback.duration,
            ended=playback.ended,
        )
        self._pending = [p for p in self._pending if p.since < since]
        self._pending.append(segment)
        while len(self._pending) > self._max_pending:
            early = self._pending.pop(0)
            self._commit(early, early.since)
        return True

    def update(self, now: float | None = None) -> list[PlayerChange]:
        """Commit every pending change due at ``now`` and report them (via :meth:`on_change`)."""
        t = self.now() if now is None else now
        changes = []
        while self._pending and self._pending[0].since <= t:
            changes.append(self._commit(self._pending.pop(0), t))
        return changes

    # -- local changes (take effect at once; pending room changes still apply) -------------
    def play(self, now: float | None = None) -> PlayerChange:
        """Start playing at the current position."""
        return self._local(now, state="playing")

    def pause(self, now: float | None = None) -> PlayerChange:
        """Pause at the current position."""
        return self._local(now, state="paused")

    def seek(self, position: float, now: float | None = None) -> PlayerChange:
        """Jump to ``position`` (kept >= 0)."""
        return self._local(now, position=max(0.0, position))

    def set_rate(self, rate: float, now: float | None = None) -> PlayerChange:
        """Change the nominal rate (the drift correction is kept)."""
        return self._local(now, nominal_rate=rate)

    def set_correction(self, factor: float, now: float | None = None) -> PlayerChange | None:
        """Set the gentle drift correction (a rate multiplier); ``None`` if unchanged."""
        t = self.now() if now is None else now
        self.update(t)
        if factor == self._state.correction:
            return None
        return self._commit(self._state.rebased(t, correction=factor, reason="correction"), t)

    def on_change(self, change: PlayerChange) -> None:
        """Hook called after every committed change; override it to drive a real player."""

    # -- internals ---------------------------------------------------------------------
    def _local(self, now: float | None, **changes: object) -> PlayerChange:
        t = self.now() if now is None else now
        self.update(t)
        return self._commit(self._state.rebased(t, reason="local", **changes), t)

    def _commit(self, segment: PlayerState, now: float) -> PlayerChange:
        # A late commit (the task woke after ``since``) reports where the player
        # should be *now*: the adapter is told at ``now``, not in the past.
        before, after = self._state, segment
        self._state = after
        position = after.position_at(now)
        change = PlayerChange(
            time=now,
            position=position,
            playing=after.playing,
            rate=after.rate,
            jump=position - before.position_at(now),
            reason=after.reason,
            version=after.version,
            before=before,
            after=after,
        )
        self.on_change(change)
        return change


def room_position_at(playback: PlaybackWire, server_time: float) -> float:
    """The room's position at ``server_time``: :func:`position_at`, never past the end."""
    position = position_at(playback, server_time)
    return position if playback.duration is None else min(position, playback.duration)


def drift_action(
    player: LocalPlayer,
    playback: PlaybackWire,
    *,
    now: float,
    server_now: float,
    settings: SyncSettings,
) -> DriftAction | None:
    """How ``player`` should correct its drift from the room's ``playback``.

    Compares the player's position at local time ``now`` with the room's live
    position at the matching server time ``server_now`` and classifies the
    difference with :func:`syncplayd.core.clock.classify_drift` (threshold and
    maximal rate correction from the room's ``settings``).

    Returns:
        ``None`` when no comparison makes sense: the room is not playing or has
        not started yet, a change is still scheduled, or the player follows
        another version. The caller then plays at the nominal rate.
    """
    if playback.state != "playing" or server_now < playback.anchor:
        return None
    if player.pending_at is not None:
        return None
    state = player.state_at(now)
    if not state.playing or state.version != playback.version or now < state.anchor:
        return None
    offset = player.position(now) - room_position_at(playback, server_now)
    return classify_drift(
        offset,
        threshold=settings.threshold_seconds,
        max_rate_correction=settings.max_rate_correction,
    )
