"""Clock math for synchronised playback: pure functions, no clock reads.

Everything here takes times as arguments (seconds, floats), so the server,
clients written in Python and the tests share one implementation of:

* where the room's playback is at a given server time (:func:`position_at`);
* the NTP four-timestamp estimate of a client's clock offset
  (:func:`ntp_sample`, :class:`ClockEstimator`);
* how far ahead to schedule a change so that it reaches everyone in time
  (:func:`lead_time`);
* smoothing (:func:`ema`) and what a client should do about its drift
  (:func:`classify_drift`).

This is Syncplay's ``Room.getPosition``/``PingService`` logic and Jellyfin's
``TimeSyncCore`` without a single ``time.time()`` call.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class PlaybackLike(Protocol):
    """What :func:`position_at` needs: the room's ``Playback`` or the wire ``PlaybackWire``."""

    @property
    def state(self) -> str:
        """``playing``, ``paused`` or ``waiting``."""
        ...

    @property
    def position(self) -> float:
        """Seconds into the media at server time ``anchor``."""
        ...

    @property
    def rate(self) -> float:
        """Playback speed multiplier."""
        ...

    @property
    def anchor(self) -> float:
        """Server time at which ``position`` holds."""
        ...


def position_at(playback: PlaybackLike, now: float) -> float:
    """The media position of ``playback`` at server time ``now``.

    Paused and waiting playbacks stand still. A playing one advances at its rate
    from its anchor; an anchor in the future is a scheduled start, so the
    position holds until then (``max(0, ...)``).

    Args:
        playback: any object with ``state``, ``position``, ``rate`` and ``anchor``.
        now: server time, seconds.

    Returns:
        Seconds into the media.
    """
    if playback.state != "playing":
        return playback.position
    return playback.position + max(0.0, now - playback.anchor) * playback.rate


@dataclass(frozen=True, slots=True)
class Sample:
    """One ping/pong exchange.

    Attributes:
        offset: server clock minus client clock, seconds.
        delay: the round trip spent on the network (server processing excluded), seconds.
    """

    offset: float
    delay: float


def ntp_sample(t0: float, t1: float, t2: float, t3: float) -> Sample:
    """The NTP estimate from one exchange.

    Args:
        t0: client time when the ping was sent.
        t1: server time when the ping arrived.
        t2: server time when the pong was sent.
        t3: client time when the pong arrived.

    Returns:
        The offset (server minus client) and the network delay. The offset is
        exact when both directions took equally long; otherwise it is off by
        half the asymmetry, which is why :class:`ClockEstimator` prefers the
        sample with the smallest delay (the least room for asymmetry).
    """
    offset = ((t1 - t0) + (t2 - t3)) / 2
    # A negative delay only comes from clocks that stepped mid-exchange; it
    # would make that sample look like the best one forever, so it is clamped.
    delay = max(0.0, (t3 - t0) - (t2 - t1))
    return Sample(offset=offset, delay=delay)


class ClockEstimator:
    """A client's estimate of the server clock from its recent pings.

    Keeps the last ``window`` samples and trusts the one with the smallest
    delay (Jellyfin and NTP do the same). Mutable on purpose: it belongs to one
    connection of one client, and never reads a clock itself.

    Args:
        window: how many recent samples to keep.
        fast_interval: seconds between pings while the estimate is young.
        slow_interval: seconds between pings afterwards.
        fast_samples: how many samples count as "young".
    """

    def __init__(
        self,
        *,
        window: int = 8,
        fast_interval: float = 0.5,
        slow_interval: float = 10.0,
        fast_samples: int = 5,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.fast_interval = fast_interval
        self.slow_interval = slow_interval
        self.fast_samples = fast_samples
        self._samples: deque[Sample] = deque(maxlen=window)
        self._count = 0

    @property
    def count(self) -> int:
        """Samples accepted since construction or the last :meth:`reset`."""
        return self._count

    @property
    def samples(self) -> tuple[Sample, ...]:
        """The samples in the window, oldest first."""
        return tuple(self._samples)

    @property
    def best(self) -> Sample | None:
        """The sample with the smallest delay (the newest of equals); ``None`` before any."""
        best: Sample | None = None
        for sample in self._samples:
            # ``<=``: on a tie the newer sample wins, since clocks drift apart over time.
            if best is None or sample.delay <= best.delay:
                best = sample
        return best

    @property
    def offset(self) -> float:
        """Server clock minus local clock, seconds; 0.0 until the first sample."""
        best = self.best
        return 0.0 if best is None else best.offset

    @property
    def delay(self) -> float | None:
        """The network round trip of the trusted sample; ``None`` until the first sample."""
        best = self.best
        return None if best is None else best.delay

    def add(self, sample: Sample) -> bool:
        """Take a sample into the window.

        Returns:
            Whether it was accepted: samples with a NaN or infinite field are
            dropped, so the estimate can never become NaN.
        """
        if not (math.isfinite(sample.offset) and math.isfinite(sample.delay)):
            return False
        self._samples.append(sample)
        self._count += 1
        return True

    def server_time(self, local_now: float) -> float:
        """The server clock's reading at local time ``local_now``."""
        return local_now + self.offset

    def next_ping_interval(self, count: int | None = None) -> float:
        """Seconds to wait before the next ping.

        Args:
            count: samples taken so far; defaults to :attr:`count`.

        Returns:
            ``fast_interval`` until ``fast_samples`` samples exist (a fresh
            join needs a good estimate quickly), then ``slow_interval``.
        """
        taken = self._count if count is None else count
        return self.fast_interval if taken < self.fast_samples else self.slow_interval

    def reset(self) -> None:
        """Forget every sample: after a reconnect the path (and its delays) may differ."""
        self._samples.clear()
        self._count = 0


def lead_time(
    rtts: Iterable[float],
    *,
    minimum: float = 0.15,
    maximum: float = 1.5,
    margin: float = 0.05,
) -> float:
    """How far in the future to schedule a change so that it reaches every member first.

    The worst round trip plus a margin, clamped: a whole round trip rather than
    half of one leaves room for jitter, and the ceiling keeps one member on a
    bad mobile link from making everyone's play button feel broken.

    Args:
        rtts: the members' round-trip times in seconds (NaN values are ignored).
        minimum: the shortest lead, even for a room on a LAN.
        maximum: the longest lead.
        margin: added to the worst round trip.

    Returns:
        Seconds, within ``[minimum, maximum]``.
    """
    worst = max((rtt for rtt in rtts if not math.isnan(rtt)), default=0.0)
    return min(maximum, max(minimum, worst + margin))


def ema(prev: float | None, sample: float, weight: float = 0.2) -> float:
    """Exponential moving average.

    Args:
        prev: the previous average, or ``None`` for the first sample.
        sample: the new value.
        weight: how much the new value counts, in ``[0, 1]``.

    Returns:
        The new average; always between ``prev`` and ``sample``.
    """
    if prev is None:
        return sample
    value = prev + weight * (sample - prev)
    # Rounding can land one ulp outside the two inputs; the average must not.
    low, high = (prev, sample) if prev <= sample else (sample, prev)
    return min(high, max(low, value))


@dataclass(frozen=True, slots=True)
class DriftSeek:
    """Too far off to correct smoothly: seek to the live position.

    Attributes:
        offset: local minus reference position, seconds (positive: ahead).
    """

    offset: float


@dataclass(frozen=True, slots=True)
class DriftRate:
    """Slightly off: play at ``rate`` times the room's rate until back in step.

    Attributes:
        rate: a multiplier within ``1 ± max_rate_correction`` (below 1 when ahead).
        offset: local minus reference position, seconds.
    """

    rate: float
    offset: float


@dataclass(frozen=True, slots=True)
class DriftNone:
    """In step (within the deadband): play at the room's rate."""


DriftAction = DriftSeek | DriftRate | DriftNone
"""What :func:`classify_drift` decides."""


def classify_drift(
    offset: float,
    *,
    threshold: float,
    max_rate_correction: float = 0.05,
    deadband: float = 0.04,
) -> DriftAction:
    """Decide how a client corrects its drift from the room.

    Small offsets are corrected by a gentle speed change, which nobody notices;
    big ones by a seek. The speed change closes about half the gap per second
    but never exceeds ``max_rate_correction`` (0.95x to 1.05x by default), unlike
    Jellyfin's up-to-4x catch-up that users find jarring.

    Args:
        offset: local minus reference position, seconds (positive: ahead).
        threshold: beyond this, seek.
        max_rate_correction: the largest deviation of the rate from 1.
        deadband: within this, do nothing (40 ms is below what anyone notices).

    Returns:
        :class:`DriftSeek`, :class:`DriftRate` or :class:`DriftNone` (also for a NaN offset).
    """
    size = abs(offset)
    if size > threshold:
        return DriftSeek(offset=offset)
    if size > deadband:
        correction = min(max_rate_correction, max(-max_rate_correction, offset / 2))
        return DriftRate(rate=1.0 - correction, offset=offset)
    return DriftNone()
