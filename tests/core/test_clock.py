"""The clock math: tables for the rules, hypothesis for the properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core.clock import (
    ClockEstimator,
    DriftAction,
    DriftNone,
    DriftRate,
    DriftSeek,
    Sample,
    classify_drift,
    ema,
    lead_time,
    ntp_sample,
    position_at,
)
from syncplayd.core.room import Playback

# -- position_at -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("playback", "now", "expected"),
    [
        (Playback("paused", 10.0, 1.0, 100.0), 250.0, 10.0),
        (Playback("waiting", 10.0, 1.0, 100.0), 250.0, 10.0),
        (Playback("playing", 10.0, 1.0, 100.0), 100.0, 10.0),
        (Playback("playing", 10.0, 1.0, 100.0), 105.5, 15.5),
        (Playback("playing", 10.0, 2.0, 100.0), 105.0, 20.0),
        (Playback("playing", 10.0, 0.5, 100.0), 104.0, 12.0),
        # A scheduled start: the position holds until the anchor.
        (Playback("playing", 10.0, 1.0, 100.0), 99.0, 10.0),
    ],
)
def test_position_at(playback: Playback, now: float, expected: float) -> None:
    assert position_at(playback, now) == pytest.approx(expected)


def test_position_at_reads_the_wire_form_too() -> None:
    wire = protocol.PlaybackWire("playing", 1.0, 1.5, 10.0, 3, None)
    assert position_at(wire, 12.0) == pytest.approx(4.0)


# -- ntp_sample ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "offset", "delay"),
    [
        # Symmetric 50 ms each way, server 100 s ahead, 10 ms processing.
        ((0.0, 100.05, 100.06, 0.11), 100.0, 0.1),
        # 10 ms up, 90 ms down: the offset is off by half the asymmetry (40 ms).
        ((0.0, 100.01, 100.01, 0.1), 99.96, 0.1),
        # Server behind the client.
        ((50.0, 20.01, 20.01, 50.02), -30.0, 0.02),
        # A clock that stepped mid-exchange: a negative delay is clamped to 0.
        ((0.0, 5.0, 5.5, 0.2), 5.15, 0.0),
    ],
)
def test_ntp_sample(times: tuple[float, float, float, float], offset: float, delay: float) -> None:
    sample = ntp_sample(*times)
    assert sample.offset == pytest.approx(offset)
    assert sample.delay == pytest.approx(delay)


# -- ClockEstimator --------------------------------------------------------------------


def test_estimator_before_any_sample() -> None:
    clock = ClockEstimator()
    assert (clock.best, clock.offset, clock.delay, clock.count) == (None, 0.0, None, 0)
    assert clock.server_time(12.5) == 12.5


def test_estimator_trusts_the_smallest_delay() -> None:
    clock = ClockEstimator()
    for sample in [Sample(1.0, 0.3), Sample(2.0, 0.1), Sample(3.0, 0.2)]:
        assert clock.add(sample)
    assert (clock.offset, clock.delay, clock.count) == (2.0, 0.1, 3)
    assert clock.server_time(10.0) == 12.0


def test_estimator_prefers_the_newest_of_equal_delays() -> None:
    clock = ClockEstimator()
    clock.add(Sample(1.0, 0.1))
    clock.add(Sample(1.5, 0.1))
    assert clock.offset == 1.5


def test_estimator_forgets_samples_beyond_the_window() -> None:
    clock = ClockEstimator(window=3)
    clock.add(Sample(9.0, 0.01))  # the best, until it falls out of the window
    for offset in (1.0, 2.0, 3.0):
        clock.add(Sample(offset, 0.5))
    assert clock.samples == (Sample(1.0, 0.5), Sample(2.0, 0.5), Sample(3.0, 0.5))
    assert clock.offset == 3.0
    assert clock.count == 4


@pytest.mark.parametrize(
    "sample",
    [Sample(math.nan, 0.1), Sample(1.0, math.nan), Sample(math.inf, 0.1), Sample(1.0, -math.inf)],
)
def test_estimator_drops_non_finite_samples(sample: Sample) -> None:
    clock = ClockEstimator()
    assert not clock.add(sample)
    assert (clock.count, clock.samples) == (0, ())


def test_ping_interval_is_fast_at_first_then_slow() -> None:
    clock = ClockEstimator(fast_interval=0.5, slow_interval=10.0, fast_samples=5)
    intervals = []
    for _ in range(7):
        intervals.append(clock.next_ping_interval())
        clock.add(Sample(0.0, 0.1))
    assert intervals == [0.5] * 5 + [10.0] * 2
    assert clock.next_ping_interval(0) == 0.5
    assert clock.next_ping_interval(5) == 10.0


def test_reset_starts_over_with_fast_pings() -> None:
    clock = ClockEstimator()
    for _ in range(6):
        clock.add(Sample(3.0, 0.1))
    clock.reset()
    assert (clock.count, clock.samples, clock.offset) == (0, (), 0.0)
    assert clock.next_ping_interval() == clock.fast_interval


def test_estimator_needs_a_window() -> None:
    with pytest.raises(ValueError, match="window"):
        ClockEstimator(window=0)


delays = st.floats(min_value=0.051, max_value=2.0)


@given(
    true_offset=st.floats(min_value=-1e5, max_value=1e5),
    start=st.floats(min_value=0.0, max_value=1e6),
    best_one_way=st.floats(min_value=0.0, max_value=0.05),
    processing=st.lists(st.floats(min_value=0.0, max_value=0.01), min_size=8, max_size=8),
    others=st.lists(st.tuples(delays, delays), max_size=7),
    where=st.integers(min_value=0, max_value=7),
)
def test_estimator_converges_when_the_best_sample_is_symmetric(
    true_offset: float,
    start: float,
    best_one_way: float,
    processing: list[float],
    others: list[tuple[float, float]],
    where: int,
) -> None:
    """Asymmetric paths mislead single samples; the min-delay one (symmetric) does not."""
    paths = list(others)
    paths.insert(min(where, len(paths)), (best_one_way, best_one_way))
    clock = ClockEstimator()
    t0 = start
    for (up, down), busy in zip(paths, processing, strict=False):
        t1 = t0 + up + true_offset  # server clock = client clock + offset
        t2 = t1 + busy
        t3 = t2 - true_offset + down
        assert clock.add(ntp_sample(t0, t1, t2, t3))
        t0 = t3 + 0.5
    assert abs(clock.offset - true_offset) < 1e-3
    assert clock.server_time(t0) == pytest.approx(t0 + true_offset, abs=1e-3)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@given(st.lists(st.tuples(finite_or_not, finite_or_not, finite_or_not, finite_or_not)))
def test_estimator_is_never_nan(exchanges: list[tuple[float, float, float, float]]) -> None:
    clock = ClockEstimator()
    for exchange in exchanges:
        clock.add(ntp_sample(*exchange))
        assert not math.isnan(clock.offset)
        assert clock.delay is None or not math.isnan(clock.delay)


# -- lead_time -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtts", "expected"),
    [
        ([], 0.15),  # an empty room still gets the floor
        ([0.01, 0.02], 0.15),
        ([0.2], 0.25),
        ([0.05, 0.4, 0.1], 0.45),
        ([5.0], 1.5),  # one awful link does not make play feel broken
        ([math.inf], 1.5),
        ([math.nan, 0.3], 0.35),
    ],
)
def test_lead_time(rtts: list[float], expected: float) -> None:
    assert lead_time(rtts) == pytest.approx(expected)


rtt_lists = st.lists(st.floats(min_value=0.0, max_value=30.0), max_size=20)


@given(rtt_lists, st.floats(min_value=0.0, max_value=30.0))
def test_lead_is_bounded_and_grows_with_the_worst_rtt(rtts: list[float], extra: float) -> None:
    lead = lead_time(rtts, minimum=0.15, maximum=1.5)
    assert 0.15 <= lead <= 1.5
    assert lead_time([*rtts, extra], minimum=0.15, maximum=1.5) >= lead


# -- ema -------------------------------------------------------------------------------


def test_ema() -> None:
    assert ema(None, 3.0) == 3.0
    assert ema(1.0, 2.0) == pytest.approx(1.2)
    assert ema(1.0, 2.0, weight=0.5) == pytest.approx(1.5)
    assert ema(2.0, 1.0, weight=1.0) == 1.0


values = st.floats(min_value=-1e300, max_value=1e300)


@given(st.lists(values, min_size=1, max_size=30), st.floats(min_value=0.0, max_value=1.0))
def test_ema_stays_within_its_samples(samples: list[float], weight: float) -> None:
    average: float | None = None
    for sample in samples:
        average = ema(average, sample, weight)
        assert min(samples) <= average <= max(samples)


# -- classify_drift --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (3.0, DriftSeek(3.0)),
        (-2.5, DriftSeek(-2.5)),
        (2.0, DriftRate(0.95, 2.0)),  # at the threshold: still smooth, clamped
        (0.06, DriftRate(0.97, 0.06)),  # ahead: slower
        (-0.06, DriftRate(1.03, -0.06)),  # behind: faster
        (-1.0, DriftRate(1.05, -1.0)),
        (0.04, DriftNone()),  # at the deadband: leave it
        (-0.01, DriftNone()),
        (0.0, DriftNone()),
        (math.nan, DriftNone()),
    ],
)
def test_classify_drift(offset: float, expected: DriftAction) -> None:
    action = classify_drift(offset, threshold=2.0)
    if isinstance(expected, DriftRate):
        assert isinstance(action, DriftRate)
        assert action.rate == pytest.approx(expected.rate)
        assert action.offset == expected.offset
    else:
        assert action == expected


@given(
    st.floats(min_value=-100.0, max_value=100.0),
    st.floats(min_value=0.05, max_value=10.0),
    st.floats(min_value=0.001, max_value=0.5),
)
def test_rate_correction_is_bounded_and_points_the_right_way(
    offset: float, threshold: float, max_correction: float
) -> None:
    action = classify_drift(offset, threshold=threshold, max_rate_correction=max_correction)
    if isinstance(action, DriftRate):
        assert 1 - max_correction <= action.rate <= 1 + max_correction
        assert (action.rate < 1) == (offset > 0)
    elif isinstance(action, DriftSeek):
        assert abs(offset) > threshold
    else:
        assert abs(offset) <= 0.04
