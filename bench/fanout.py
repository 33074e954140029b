"""Fan-out benchmark: from one member's play/pause until every other member has it.

For each room size it starts a fresh daemon (SQLite), creates one room, joins
``size - 1`` listeners spread over ``--workers`` listener processes
(``bench/_common.py listener``, raw trio-websocket connections, one fresh user
each, heartbeats every 5 s) and the sender, a member held by this process.
The sender toggles play/pause ``--commands`` times, waiting for its own copy of
each ``playback`` broadcast and then ``--interval`` seconds (jittered ±50 %).

Delay = when a listener's task has the ``playback`` frame minus just before the
sender's ``send``, both ``time.monotonic_ns()`` (Linux ``CLOCK_MONOTONIC``, one
clock for every process of the machine). Reported per room size over
listeners x commands, and per command for the *last* listener to get it.

Usage:  .venv/bin/python bench/fanout.py [--sizes 10,50,200] [--commands 200]
            [--interval 0.1] [--warmup 10] [--settle 2] [--workers 3] [--raw FILE]
Results go to stdout as a markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import trio
from _common import (
    Member,
    Summary,
    WorkerHandle,
    cpu_seconds,
    create_rooms,
    machine_line,
    markdown_table,
    raise_open_files,
    sqlite_daemon,
    summary,
    ws_url,
)

HEARTBEAT_SECONDS = 5.0
ENV = {
    # The sender sends a few commands per second on top of its heartbeats.
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "1000",
    # Nobody may be timed out while a big room is still joining.
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "120",
}


@dataclass(frozen=True, slots=True)
class Result:
    size: int
    commands: int
    delay: Summary  # ms, every listener x command
    last: Summary  # ms, per command: the last listener to get it
    echo: Summary  # ms, the sender's own copy
    missing: int  # listener x command receipts that never came
    closed: list[str]
    daemon_cpu: float  # share of one core during the measured commands


def shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def measure(base_url: str, pid: int, size: int, args: argparse.Namespace) -> Result:
    url = ws_url(base_url)
    [(room_id, owner)] = await create_rooms(base_url, 1, max_participants=min(1000, size + 5))
    workers = [await WorkerHandle.spawn() for _ in range(min(args.workers, size - 1))]
    try:
        async with trio.open_nursery() as nursery:
            sender = await Member.join(nursery, url, room_id, owner)
            nursery.start_soon(sender.run, HEARTBEAT_SECONDS)
            answers = []

            async def connect(worker: WorkerHandle, count: int) -> None:
                answers.append(await worker.connect(url, [(room_id, count)], HEARTBEAT_SECONDS, 20))

            async with trio.open_nursery() as connecting:
                for worker, count in zip(workers, shares(size - 1, len(workers)), strict=True):
                    connecting.start_soon(connect, worker, count)
            failed = [error for answer in answers for error in answer.errors]
            if sum(answer.failed for answer in answers):
                raise RuntimeError(f"listeners failed to join: {failed}")
            await trio.sleep(args.settle)  # the join storm (presence broadcasts) dies down
            for _ in range(args.warmup):
                await sender.toggle()
                await trio.sleep(args.interval)
            sent: dict[int, int] = {}
            cpu_before, wall_before = cpu_seconds(pid), trio.current_time()
            for _ in range(args.commands):
                version, at = await sender.toggle()
                sent[version] = at
                await trio.sleep(args.interval * random.uniform(0.5, 1.5))
            cpu = (cpu_seconds(pid) - cpu_before) / (trio.current_time() - wall_before)
            echo = [(t - sent[v]) / 1e6 for v, t in sender.receipts if v in sent]
            await trio.sleep(1.0)  # stragglers
            reports = [await worker.report() for worker in workers]
            nursery.cancel_scope.cancel()
    finally:
        for worker in workers:
            await worker.stop()

    delays: list[float] = []
    last: dict[int, float] = {}
    by_command: dict[int, list[float]] = {version: [] for version in sent}
    missing = 0
    closed: list[str] = []
    for receipts_by_room, _alive, worker_closed in reports:
        closed += worker_closed
        for receipts in receipts_by_room.get(room_id, []):
            got = {v: t for v, t in receipts if v in sent}
            missing += len(sent) - len(got)
            for version, at in got.items():
                delay = (at - sent[version]) / 1e6
                delays.append(delay)
                by_command[version].append(delay)
                last[version] = max(last.get(version, 0.0), delay)
    if args.raw is not None:
        with args.raw.open("a") as out:
            for version, at in sorted(sent.items()):
                record = {"size": size, "version": version, "sent_ns": at}
                out.write(json.dumps(record | {"delays_ms": by_command[version]}) + "\n")
    return Result(
        size=size,
        commands=len(sent),
        delay=summary(delays),
        last=summary(list(last.values())),
        echo=summary(echo),
        missing=missing,
        closed=closed,
        daemon_cpu=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10,50,200", help="room sizes, comma-separated (default: %(default)s)"
    )
    parser.add_argument(
        "--commands", type=int, default=200, help="measured toggles per size (default: %(default)s)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.1,
        help="mean pause between toggles, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup", type=int, default=10, help="unmeasured toggles first (default: %(default)s)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds to wait after the joins (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=3, help="listener processes (default: %(default)s)"
    )
    parser.add_argument(
        "--raw",
        type=Path,
        help="also append every command's send time (monotonic ns) and delays to this "
        "JSON-lines file (default: none)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if any(not 2 <= size <= 1000 for size in sizes):
        parser.error("room sizes must be within 2..1000")
    if not 1 <= args.commands <= 10_000 or not 0.001 <= args.interval <= 5:
        parser.error("--commands must be within 1..10000 and --interval within 0.001..5")
    raise_open_files()
    print(machine_line())
    print(f"# workers: {args.workers} listener processes; sender in process {os.getpid()}\n")
    rows = []
    for size in sizes:
        with sqlite_daemon(ENV) as daemon:
            result = trio.run(measure, daemon.base_url, daemon.process.pid, size, args)
        rows.append(
            (
                result.size,
                result.delay.count,
                result.delay.p50,
                result.delay.p99,
                result.delay.max,
                result.last.p50,
                result.last.p99,
                result.last.max,
                result.echo.p50,
                f"{result.daemon_cpu:.0%}",
            )
        )
        if result.missing or result.closed:
            print(f"# size {size}: {result.missing} receipts missing; closed: {result.closed[:5]}")
    headers = [
        "room size",
        "samples",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "last p50 ms",
        "last p99 ms",
        "last max ms",
        "sender echo p50 ms",
        "daemon CPU",
    ]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
