"""Capacity benchmark: many concurrent connections, their memory, and fan-out under that load.

Starts one daemon (SQLite), creates ``max(levels) / room_size`` rooms over REST,
then steps the number of joined connections up through ``--levels`` (rooms of
``--room-size``, one fresh user per connection, everyone heartbeating every
``--heartbeat`` seconds) from ``--workers`` listener processes
(``bench/_common.py listener``). At each level, once the joins are done and one
heartbeat period has passed:

* memory: the daemon's ``VmRSS`` (``/proc/PID/status``) minus its value after the
  rooms were created, divided by the connections;
* fan-out under load: in ``--probe-rooms`` rooms a member held by this process
  toggles play/pause about once a second for ``--probe-seconds``; delay = when a
  listener's task has the ``playback`` frame minus just before the send, both
  ``time.monotonic_ns()`` (Linux ``CLOCK_MONOTONIC``, shared by all processes);
* CPU: the daemon's and the workers' user + system time over the probe window,
  as a share of one core (the machine's total is ``cores x 100 %``).

The run stops early, and says why, when a step's joins take longer than
``--step-timeout``, when connections fail or get closed, or when the next step
would not fit in ``--max-seconds``. Everything is on 127.0.0.1.

Usage:  .venv/bin/python bench/capacity.py [--levels 1000,2000,5000,10000]
            [--room-size 10] [--workers 4] [--probe-rooms 20] [--probe-seconds 15]
            [--heartbeat 5] [--max-seconds 300] [--step-timeout 120]
Results go to stdout as a markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import trio
from _common import (
    Connected,
    Member,
    WorkerHandle,
    collect_delays,
    cpu_seconds,
    create_rooms,
    machine_line,
    markdown_table,
    raise_open_files,
    sqlite_daemon,
    summary,
    toggle_probe,
    vm_rss_kib,
    ws_url,
)

from syncplayd.identity import Principal


@dataclass
class Level:
    """What one step measured."""

    connections: int
    joined_per_second: float
    join_cpu_ms: float  # daemon CPU per join during the step, ms
    rss_kib: int
    delays: list[float]  # ms, listener x command
    last: list[float]  # ms, per command: the last listener
    lost_commands: int  # toggles whose own echo never came back
    missing: int  # listener receipts that never came
    daemon_cpu: float
    workers_cpu: float
    alive: int
    closed: list[str]


def split_rooms(
    rooms: list[str], probes: set[str], room_size: int, workers: int
) -> list[list[tuple[str, int]]]:
    """Rooms dealt round-robin to the workers; a probe room's sender is held here."""
    shares: list[list[tuple[str, int]]] = [[] for _ in range(workers)]
    for i, room_id in enumerate(rooms):
        count = room_size - 1 if room_id in probes else room_size
        shares[i % workers].append((room_id, count))
    return shares


async def join_all(
    workers: list[WorkerHandle],
    shares: list[list[tuple[str, int]]],
    url: str,
    args: argparse.Namespace,
) -> list[Connected]:
    """Each worker joins its share of members; returns when all have answered."""
    answers: list[Connected] = []

    async def connect(worker: WorkerHandle, share: list[tuple[str, int]]) -> None:
        answers.append(await worker.connect(url, share, args.heartbeat, args.concurrency))

    async with trio.open_nursery() as nursery:
        for worker, share in zip(workers, shares, strict=True):
            nursery.start_soon(connect, worker, share)
    return answers


async def measure_level(
    workers: list[WorkerHandle],
    senders: list[Member],
    pid: int,
    connections: int,
    joined_per_second: float,
    join_cpu_ms: float,
    args: argparse.Namespace,
) -> Level:
    await trio.sleep(args.heartbeat + 1)  # joins settle; every member has heartbeated once
    rss = vm_rss_kib(pid)
    for worker in workers:
        await worker.report()  # drop receipts from before the probe
    pids = [worker.process.pid for worker in workers]
    cpu0, workers0, wall0 = cpu_seconds(pid), sum(map(cpu_seconds, pids)), time.monotonic()
    sent, lost = await toggle_probe(senders, args.probe_seconds)
    wall = time.monotonic() - wall0
    daemon_cpu = (cpu_seconds(pid) - cpu0) / wall
    workers_cpu = (sum(map(cpu_seconds, pids)) - workers0) / wall
    await trio.sleep(1.0)  # stragglers
    got = await collect_delays(workers, {sender.room_id for sender in senders}, sent)
    alive = got.alive + sum(s.closed is None for s in senders)
    closed = got.closed + [sender.closed for sender in senders if sender.closed is not None]
    return Level(
        connections,
        joined_per_second,
        join_cpu_ms,
        rss,
        got.delays,
        got.last,
        lost,
        got.missing,
        daemon_cpu,
        workers_cpu,
        alive,
        closed,
    )


async def run(base_url: str, pid: int, args: argparse.Namespace) -> None:
    started = time.monotonic()
    url = ws_url(base_url)
    levels: list[int] = args.levels
    rss_start = vm_rss_kib(pid)
    rooms = await create_rooms(
        base_url, max(levels) // args.room_size, max_participants=args.room_size + 2
    )
    rss_rooms = vm_rss_kib(pid)
    print(
        f"# daemon VmRSS: {rss_start / 1024:.1f} MiB at start, {rss_rooms / 1024:.1f} MiB after "
        f"creating {len(rooms)} rooms ({time.monotonic() - started:.0f} s); "
        f"the per-connection figures count from there\n"
    )
    owners: dict[str, Principal] = dict(rooms)
    room_ids = [room_id for room_id, _ in rooms]
    probes = room_ids[: args.probe_rooms]
    workers = [await WorkerHandle.spawn() for _ in range(args.workers)]
    results: list[Level] = []
    stopped = ""
    try:
        async with trio.open_nursery() as nursery:
            senders = []
            for room_id in probes:
                sender = await Member.join(nursery, url, room_id, owners[room_id])
                nursery.start_soon(sender.run, args.heartbeat)
                senders.append(sender)
            joined_rooms = 0
            for level in levels:
                elapsed = time.monotonic() - started
                last_step = results[-1] if results else None
                # The next step costs at least its joins at the last rate plus the probe.
                rate = last_step.joined_per_second if last_step else 200.0
                cost = (level - joined_rooms * args.room_size) / rate + args.probe_seconds + 10
                if elapsed + cost > args.max_seconds:
                    stopped = f"{level:,} not attempted: it would not fit in --max-seconds"
                    break
                new_rooms = room_ids[joined_rooms : level // args.room_size]
                shares = split_rooms(new_rooms, set(probes), args.room_size, len(workers))
                t0, cpu0 = time.monotonic(), cpu_seconds(pid)
                answers: list[Connected] = []
                with trio.move_on_after(args.step_timeout) as step:
                    answers = await join_all(workers, shares, url, args)
                if step.cancelled_caught:
                    stopped = f"{level:,}: the joins took more than {args.step_timeout:g} s"
                    break
                joined = sum(answer.ok for answer in answers)
                failed = sum(answer.failed for answer in answers)
                per_second = joined / (time.monotonic() - t0)
                join_cpu_ms = (cpu_seconds(pid) - cpu0) / max(1, joined) * 1e3
                joined_rooms = level // args.room_size
                if failed:
                    errors = sorted({e for answer in answers for e in answer.errors})
                    stopped = f"{level:,}: {failed} joins failed ({errors[:3]})"
                    break
                result = await measure_level(
                    workers, senders, pid, level, per_second, join_cpu_ms, args
                )
                results.append(result)
                print(
                    f"# {level:,} connections: joined at {per_second:.0f}/s, "
                    f"{time.monotonic() - started:.0f} s in",
                    flush=True,
                )
                if result.closed or result.alive < level:
                    stopped = (
                        f"{level:,}: {len(result.closed)} connections closed {result.closed[:3]}"
                    )
                    break
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for worker in workers:
                await worker.stop()

    rows = []
    for result in results:
        delay, last = summary(result.delays), summary(result.last)
        per_connection = (result.rss_kib - rss_rooms) / result.connections
        rows.append(
            (
                result.connections,
                f"{result.joined_per_second:.0f}",
                f"{result.join_cpu_ms:.1f}",
                f"{result.rss_kib / 1024:.0f}",
                f"{per_connection:.1f}",
                delay.count,
                delay.p50,
                delay.p99,
                delay.max,
                last.p99,
                f"{result.daemon_cpu:.0%}",
                f"{result.workers_cpu:.0%}",
            )
        )
        if result.lost_commands or result.missing:
            print(
                f"# {result.connections:,}: {result.lost_commands} toggles lost, "
                f"{result.missing} receipts missing"
            )
    headers = [
        "connections",
        "joins/s",
        "daemon CPU ms per join",
        "daemon RSS MiB",
        "KiB per connection",
        "fan-out samples",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "last p99 ms",
        "daemon CPU",
        "workers CPU",
    ]
    print(markdown_table(headers, rows))
    print(f"\n# total {time.monotonic() - started:.0f} s; {stopped or 'every level measured'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels",
        default="1000,2000,5000,10000",
        help="connection counts, ascending, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--room-size", type=int, default=10, help="members per room (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="listener processes (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=25,
        help="joins in flight per worker (default: %(default)s)",
    )
    parser.add_argument(
        "--probe-rooms",
        type=int,
        default=20,
        help="rooms where fan-out is measured (default: %(default)s)",
    )
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=15.0,
        help="fan-out measurement per level, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=5.0,
        help="heartbeat interval, seconds, daemon and clients (default: %(default)s)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        help="time budget for the whole run (default: %(default)s)",
    )
    parser.add_argument(
        "--step-timeout",
        type=float,
        default=120.0,
        help="give up when one step's joins take longer, seconds (default: %(default)s)",
    )
    args = parser.parse_args()
    args.levels = [int(level) for level in args.levels.split(",")]
    if args.levels != sorted(args.levels) or args.levels[0] < args.room_size:
        parser.error("--levels must be ascending and at least one room")
    if max(args.levels) > 20_000 or not 2 <= args.room_size <= 1000:
        parser.error("at most 20000 connections; rooms of 2..1000")
    if not 1 <= args.probe_rooms <= args.levels[0] // args.room_size:
        parser.error("--probe-rooms must be within 1..(first level / room size)")
    if not 1 <= args.workers <= 16 or args.max_seconds > 900:
        parser.error("--workers within 1..16, --max-seconds at most 900")
    files = raise_open_files()
    if files < max(args.levels) + 1000:
        parser.error(f"the open-files limit is {files}: too low for {max(args.levels)} sockets")
    print(machine_line())
    env = {
        "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": f"{args.heartbeat:g}",
        "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "100",
    }
    with sqlite_daemon(env) as daemon:
        trio.run(run, daemon.base_url, daemon.process.pid, args)


if __name__ == "__main__":
    main()
