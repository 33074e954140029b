"""Micro-benchmark: what a joiner's member list costs the room, by room size.

A watch party arriving: fresh users join one room one after another, and between two
joins two members already there send a heartbeat (the room changes as it does during
a join flood). After each join the joiner's ``joined`` frame is built around its member
list, timed with ``time.perf_counter_ns``, two ways in the same run:

* ``MemberList.frame`` (the daemon's way): the users changed since the last list, told
  by the engine's journal, encoded again; the frame built by one join of its parts;
* the way it replaced (kept here as the reference for the ratio): a pass over every
  session to find each user's sessions, compared with the cached ones, and the frame
  made by string concatenation, ``replace``, UTF-8 encoding and the header (five copies
  of the list).

Single process, no I/O, loops bounded by ``--sizes``; safe on a shared machine.

Usage:  .venv/bin/python bench/join_snapshot.py [--sizes 500,2000,5000]
Results: a markdown table on stdout (microseconds per join at the room's full size,
median and p99 of the last 10 % of the joins, and the total over the whole arrival).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncplayd.core import protocol
from syncplayd.core import room as engine
from syncplayd.server.live.member_list import MemberList
from syncplayd.server.live.ws_frames import server_frame

BEFORE = '{"type":"joined","session_id":"s","room":{"name":"bench"},"participants":'
AFTER = ',"chat":[],"settings":{}}'


class Reference:
    """The previous way: a per-user cache checked by a pass over every session."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[list[engine.Session], str]] = {}

    def frame(self, state: engine.RoomState) -> bytes:
        by_user: dict[str, list[engine.Session]] = {}
        for session in state.sessions.values():
            by_user.setdefault(session.user_id, []).append(session)
        fresh: dict[str, tuple[list[engine.Session], str]] = {}
        for user_id, group in by_user.items():
            cached = self._cache.get(user_id)
            if cached is None or any(a is not b for a, b in zip(cached[0], group, strict=False)):
                member = engine.member(state, group[0].session_id)
                cached = (group, protocol.encode_member(member).decode())
            fresh[user_id] = cached
        self._cache = fresh
        members = "[" + ",".join(entry for _, entry in fresh.values()) + "]"
        text = (BEFORE + "[]" + AFTER).replace("[]", members, 1)
        return server_frame(text)


def arrival(size: int, build: Callable[[engine.RoomState], bytes]) -> list[float]:
    """Microseconds per joiner's frame, for ``size`` users joining one after another."""
    state = engine.new_room("bench", engine.Playback())
    took: list[float] = []
    clock = time.perf_counter_ns
    for i in range(size):
        joiner = engine.Session(
            session_id=f"s{i}", user_id=f"u{i}", user_name=f"User {i}", last_seen=1.0
        )
        state = dataclasses.replace(state, sessions=state.table.put(joiner))
        for j in range(2):
            key = f"s{(i * 7 + j) % (i + 1)}"
            beat = dataclasses.replace(state.table[key], rtt=0.02 + j / 1000, last_seen=2.0)
            state = dataclasses.replace(state, sessions=state.table.put(beat))
        started = clock()
        build(state)
        took.append((clock() - started) / 1000)
    return took


def daemons_way() -> Callable[[engine.RoomState], bytes]:
    kept, before, after = MemberList(), BEFORE.encode(), AFTER.encode()
    return lambda state: kept.frame(state, before, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="500,2000,5000", help="room sizes, comma-separated")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, one process, no I/O.\n")
    print(
        "| members | MemberList p50 µs | p99 | reference p50 µs | p99 | ratio p50 "
        "| whole arrival ms (MemberList / reference) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        ways: list[list[float]] = []
        for build in (daemons_way(), Reference().frame):
            gc.collect()
            ways.append(arrival(size, build))
        tails = [sorted(took[-max(1, size // 10) :]) for took in ways]
        p50 = [statistics.median(tail) for tail in tails]
        p99 = [tail[min(len(tail) - 1, round(0.99 * len(tail)) - 1)] for tail in tails]
        cells = [
            f"{p50[0]:.0f}",
            f"{p99[0]:.0f}",
            f"{p50[1]:.0f}",
            f"{p99[1]:.0f}",
            f"{p50[0] / p50[1]:.2f}",
            f"{sum(ways[0]) / 1000:.0f} / {sum(ways[1]) / 1000:.0f}",
        ]
        print(f"| {size:,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
