"""Micro-benchmark of the pure room engine: the cost of one member's heartbeat by room size.

For each room size it builds a playing room of that many connected sessions
(one user each, every one with a round trip), then applies, round-robin over
the members, what the shell applies for one client heartbeat: an ``RttSample``
and an in-step ``Heartbeat``. Each ``engine.apply`` call is timed on its own
with ``time.perf_counter_ns``. Also timed: a ``Connect`` of a fresh user into
the full room and its ``Leave`` (join and leave, alternating, so the room keeps
its size).

The loops are bounded in count and in time (``--count`` calls per size, and no
more than ``--budget`` seconds per size), single-threaded and talk to nothing:
it is safe on a shared machine. A garbage collection before each size keeps one
size's garbage from being charged to the next.

Usage:  .venv/bin/python bench/engine.py [--sizes 10,100,1000,5000] [--count 20000]
            [--joins 400] [--budget 10]
Results go to stdout as a markdown table (paste into docs/benchmarks.md):
microseconds per call, median and p99.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncplayd.core import room as engine
from syncplayd.core.clock import position_at


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def full_room(size: int, now: float) -> engine.RoomState:
    """A playing room of ``size`` connected members, built directly (not by ``size`` joins:
    a slow engine would spend the whole budget building the big rooms)."""
    sessions = {
        f"s{i}": engine.Session(
            session_id=f"s{i}",
            user_id=f"u{i}",
            user_name=f"User {i}",
            rtt=0.02 + (i % 50) / 1000,
            last_seen=now,
        )
        for i in range(size)
    }
    playback = engine.Playback("playing", 0.0, 1.0, now, 1, "User 0")
    state = engine.new_room("bench", playback, item_id="item", duration=100_000.0)
    return engine.RoomState(
        room_id=state.room_id,
        playback=state.playback,
        sessions=sessions,
        config=state.config,
        item_id=state.item_id,
        duration=state.duration,
    )


def time_heartbeats(
    state: engine.RoomState, size: int, count: int, budget: float, now: float
) -> tuple[list[float], list[float]]:
    """Microseconds per ``RttSample`` and per ``Heartbeat``, round-robin over the members."""
    rtts: list[float] = []
    beats: list[float] = []
    deadline = time.monotonic() + budget
    clock = time.perf_counter_ns
    for i in range(count):
        if i % 256 == 0 and time.monotonic() > deadline:
            break
        sid = f"s{i % size}"
        now += 0.001
        sample = engine.RttSample(sid, 0.03)
        started = clock()
        state, _ = engine.apply(state, sample, now)
        rtts.append((clock() - started) / 1000)
        position = position_at(state.playback, now)
        beat = engine.Heartbeat(sid, position, now, state.playback.version)
        started = clock()
        state, _ = engine.apply(state, beat, now)
        beats.append((clock() - started) / 1000)
    return rtts, beats


def time_joins(
    state: engine.RoomState, joins: int, budget: float, now: float
) -> tuple[list[float], list[float]]:
    """Microseconds per ``Connect`` of a fresh user into the room, and per its ``Leave``."""
    joined: list[float] = []
    left: list[float] = []
    deadline = time.monotonic() + budget
    clock = time.perf_counter_ns
    for i in range(joins):
        if time.monotonic() > deadline:
            break
        sid = f"j{i}"
        now += 0.001
        connect = engine.Connect(sid, f"ju{i}", f"Joiner {i}", "member")
        started = clock()
        state, _ = engine.apply(state, connect, now)
        joined.append((clock() - started) / 1000)
        started = clock()
        state, _ = engine.apply(state, engine.Leave(sid), now)
        left.append((clock() - started) / 1000)
    return joined, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,1000,5000", help="room sizes, comma-separated")
    parser.add_argument("--count", type=int, default=20_000, help="heartbeats per size")
    parser.add_argument("--joins", type=int, default=400, help="join+leave pairs per size")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per size and loop")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"Python {platform.python_version()} on {platform.machine()}, one process, no I/O.\n")
    print(
        "| sessions | rtt sample p50 | p99 | heartbeat p50 | p99 "
        "| join p50 | p99 | leave p50 | p99 | heartbeats timed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_beat: dict[int, float] = {}
    for size in sizes:
        now = 1000.0
        state = full_room(size, now)
        gc.collect()
        rtts, beats = time_heartbeats(state, size, args.count, args.budget, now)
        gc.collect()
        joined, left = time_joins(state, args.joins, args.budget, now + 100.0)
        cells = [
            f"{statistics.median(rtts):.1f}",
            f"{percentile(rtts, 99):.1f}",
            f"{statistics.median(beats):.1f}",
            f"{percentile(beats, 99):.1f}",
            f"{statistics.median(joined):.1f}",
            f"{percentile(joined, 99):.1f}",
            f"{statistics.median(left):.1f}",
            f"{percentile(left, 99):.1f}",
            str(len(beats)),
        ]
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)
        # One client heartbeat is both calls.
        per_beat[size] = statistics.median(rtts) + statistics.median(beats)
    print("\nMicroseconds per call, median and p99 (nearest rank).")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        ratio = per_beat[large] / per_beat[small]
        print(f"A client heartbeat (rtt sample + heartbeat) at {large:,} sessions costs")
        print(f"{ratio:.2f}x what it costs at {small:,} (medians).")


if __name__ == "__main__":
    main()
