"""Micro-benchmark of the pure room engine: the cost of one member's heartbeat by room size.

For each room size it builds a playing room of that many connected sessions
(one user each, every one with a round trip), then applies, round-robin over
the members, what a client heartbeat carries: an ``RttSample`` and an in-step
``Heartbeat`` (two commands, as the shell has applied them), and the same as one
command, a ``Heartbeat`` with its ``rtt`` (for another member, so that it does
not find the first two's session in the caches). Each ``engine.apply`` call is
timed on its own with ``time.perf_counter_ns``. Also timed: a ``Connect`` of a
fresh user into the full room and its ``Leave`` (join and leave, alternating, so
the room keeps its size).

``--cold`` evicts the CPU caches before every timed call by touching a buffer
larger than the last-level cache (``--evict-mib``, 64 MiB by default: a 32 MiB L3
here), as in the running daemon, where other work runs between two frames of a
room and a heartbeat finds the engine's code and the room's data out of the
caches. Every call is timed cold, the two commands of one heartbeat too (in the
daemon the second would find what the first brought in: summing their columns
overstates what the pair costs there). Each eviction takes milliseconds, so a
cold run times far fewer calls in its budget.

The loops are bounded in count and in time (``--count`` calls per size, and no
more than ``--budget`` seconds per size and loop), single-threaded and talk to
nothing: it is safe on a shared machine. A garbage collection before each size
keeps one size's garbage from being charged to the next.

Usage:  .venv/bin/python bench/engine.py [--sizes 10,100,1000,5000] [--count 20000]
            [--joins 400] [--budget 10] [--cold [--evict-mib 64]]
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
from collections.abc import Callable, Sequence
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


Evict = Callable[[], None]
"""Called before every timed call: nothing (warm), or the cache eviction (``--cold``)."""


def warm() -> None:
    """Leave the caches as they are."""


def evictor(mib: int) -> Evict:
    """A function that pushes everything else out of the CPU caches: it writes one byte
    of each page and reads one of each cache line of a ``mib`` MiB buffer."""
    junk = bytearray(mib << 20)

    def evict() -> None:
        for i in range(0, len(junk), 4096):
            junk[i] = (junk[i] + 1) & 255
        sum(junk[::64])

    return evict


def timed(
    state: engine.RoomState, command: engine.Command, now: float, evict: Evict
) -> tuple[engine.RoomState, float]:
    """``command`` applied to ``state`` after ``evict()``, and the microseconds it took."""
    clock = time.perf_counter_ns
    evict()
    started = clock()
    state, _ = engine.apply(state, command, now)
    return state, (clock() - started) / 1000


def time_heartbeats(
    state: engine.RoomState, size: int, count: int, budget: float, now: float, evict: Evict
) -> tuple[list[float], list[float], list[float]]:
    """Microseconds per ``RttSample``, per ``Heartbeat`` and per ``Heartbeat`` with an rtt
    (one command for both), round-robin over the members."""
    rtts: list[float] = []
    beats: list[float] = []
    ones: list[float] = []
    deadline = time.monotonic() + budget
    for i in range(count):
        if (i % 256 == 0 or evict is not warm) and time.monotonic() > deadline:
            break
        sid = f"s{i % size}"
        now += 0.001
        state, took = timed(state, engine.RttSample(sid, 0.03), now, evict)
        rtts.append(took)
        position = position_at(state.playback, now)
        beat = engine.Heartbeat(sid, position, now, state.playback.version)
        state, took = timed(state, beat, now, evict)
        beats.append(took)
        other = f"s{(i + size // 2) % size}"
        one = engine.Heartbeat(other, position, now, state.playback.version, rtt=0.03)
        state, took = timed(state, one, now, evict)
        ones.append(took)
    return rtts, beats, ones


def time_joins(
    state: engine.RoomState, joins: int, budget: float, now: float, evict: Evict
) -> tuple[list[float], list[float]]:
    """Microseconds per ``Connect`` of a fresh user into the room, and per its ``Leave``."""
    joined: list[float] = []
    left: list[float] = []
    deadline = time.monotonic() + budget
    for i in range(joins):
        if time.monotonic() > deadline:
            break
        sid = f"j{i}"
        now += 0.001
        connect = engine.Connect(sid, f"ju{i}", f"Joiner {i}", "member")
        state, took = timed(state, connect, now, evict)
        joined.append(took)
        state, took = timed(state, engine.Leave(sid), now, evict)
        left.append(took)
    return joined, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10,100,1000,5000", help="room sizes, comma-separated")
    parser.add_argument("--count", type=int, default=20_000, help="heartbeats per size")
    parser.add_argument("--joins", type=int, default=400, help="join+leave pairs per size")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per size and loop")
    parser.add_argument(
        "--cold", action="store_true", help="evict the CPU caches before every timed call"
    )
    parser.add_argument(
        "--evict-mib", type=int, default=64, help="with --cold: MiB touched (more than the L3)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    evict = evictor(args.evict_mib) if args.cold else warm

    caches = f"cold caches (evicted: {args.evict_mib} MiB)" if args.cold else "warm caches"
    print(
        f"Python {platform.python_version()} on {platform.machine()}, one process, no I/O, "
        f"{caches}.\n"
    )
    print(
        "| sessions | rtt sample p50 | p99 | heartbeat p50 | p99 "
        "| heartbeat with rtt (one command) p50 | p99 "
        "| join p50 | p99 | leave p50 | p99 | heartbeats timed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_beat: dict[int, float] = {}
    per_one: dict[int, float] = {}
    for size in sizes:
        now = 1000.0
        state = full_room(size, now)
        gc.collect()
        rtts, beats, ones = time_heartbeats(state, size, args.count, args.budget, now, evict)
        gc.collect()
        joined, left = time_joins(state, args.joins, args.budget, now + 100.0, evict)
        cells = [
            f"{statistics.median(rtts):.1f}",
            f"{percentile(rtts, 99):.1f}",
            f"{statistics.median(beats):.1f}",
            f"{percentile(beats, 99):.1f}",
            f"{statistics.median(ones):.1f}",
            f"{percentile(ones, 99):.1f}",
            f"{statistics.median(joined):.1f}",
            f"{percentile(joined, 99):.1f}",
            f"{statistics.median(left):.1f}",
            f"{percentile(left, 99):.1f}",
            str(len(beats)),
        ]
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)
        # One client heartbeat is both calls, or the one command.
        per_beat[size] = statistics.median(rtts) + statistics.median(beats)
        per_one[size] = statistics.median(ones)
    print("\nMicroseconds per call, median and p99 (nearest rank).")
    for size in sizes:
        two, one = per_beat[size], per_one[size]
        print(
            f"A client heartbeat at {size:,} sessions: {two:.1f} µs as two commands, "
            f"{one:.1f} µs as one ({one / two:.2f}x)."
        )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        ratio = per_beat[large] / per_beat[small]
        print(f"A client heartbeat (rtt sample + heartbeat) at {large:,} sessions costs")
        print(f"{ratio:.2f}x what it costs at {small:,} (medians).")


if __name__ == "__main__":
    main()
