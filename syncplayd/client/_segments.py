"""The local player's timeline segments and the change notices its hook receives."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from syncplayd.core.clock import position_at

__all__ = ["PlayerChange", "PlayerState"]

State = Literal["playing", "paused", "waiting"]
END_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class PlayerState:
    """One segment of the local timeline (all times on the *local* clock).

    ``rate`` is the effective rate (the room's ``nominal_rate`` times the gentle
    drift ``correction``), so that :func:`syncplayd.core.clock.position_at`
    applies to a segment as it does to the room's playback. ``item_id`` is the
    queue item the media is, ``duration`` its length when known: the position
    never passes it (the player stops at the end); ``ended`` is the room's end.
    """

    state: State
    position: float
    anchor: float
    nominal_rate: float = 1.0
    correction: float = 1.0
    version: int = 0
    since: float = float("-inf")
    reason: str = "initial"
    item_id: str | None = None
    duration: float | None = None
    ended: bool = False

    @property
    def rate(self) -> float:
        """The effective rate: the nominal rate times the drift correction."""
        return self.nominal_rate * self.correction

    @property
    def playing(self) -> bool:
        """Whether the media advances (possibly from a future ``anchor``)."""
        return self.state == "playing"

    def position_at(self, now: float) -> float:
        """The media position at local time ``now`` (at most ``duration``)."""
        position = position_at(self, now)
        return position if self.duration is None else min(position, self.duration)

    def end_time(self) -> float | None:
        """The local time a playing segment reaches its ``duration``; ``None`` if it never does."""
        if not self.playing or self.duration is None or self.rate <= 0:
            return None
        return self.anchor + max(0.0, self.duration - self.position) / self.rate

    def at_end(self, now: float) -> bool:
        """Whether the media stands at its end at local time ``now`` (within a microsecond:
        :meth:`end_time` is exact only up to rounding)."""
        return self.duration is not None and (
            self.ended or self.position_at(now) >= self.duration - END_TOLERANCE
        )

    def rebased(self, now: float, **changes: object) -> PlayerState:
        """This segment re-anchored at ``now`` (its position there), with ``changes``."""
        # Before a scheduled start (``anchor`` in the future) the position holds and
        # the start stays where it was scheduled.
        position = self.position_at(now)
        anchor = max(now, self.anchor) if self.playing else now
        fields: dict[str, object] = {"position": position, "anchor": anchor, "since": now}
        fields.update(changes)
        return dataclasses.replace(self, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PlayerChange:
    """What :meth:`LocalPlayer.on_change` receives when the player's segment changes.

    Attributes:
        time: the local time of the change.
        position: the position the player should be at, at ``time``.
        playing: whether it should play.
        rate: the effective rate to set (nominal rate times drift correction).
        jump: ``position`` minus where the previous segment would have been; a
            real player seeks when its own position is off (see the module docs).
        reason: ``"playback:<server reason>"`` (a scheduled room change),
            ``"sync"`` (the server's seek command), ``"resync"`` (the client's own
            large-drift seek, with ``local_resync``), ``"correction"`` (gentle
            rate correction) or ``"local"`` (a local method call).
        version: the room playback version the player now follows.
    """

    time: float
    position: float
    playing: bool
    rate: float
    jump: float
    reason: str
    version: int
    before: PlayerState
    after: PlayerState
