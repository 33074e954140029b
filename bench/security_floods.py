"""Security floods from one account: concurrent joins, a reconnect loop, password changes.

Two attacks a single user can make, each against a fresh daemon process (SQLite in a
temporary folder, 127.0.0.1 only) started from the source tree ``--tree``: the daemon runs
as ``<this interpreter> -m syncplayd`` with ``PYTHONPATH=<tree>`` and the tree as its
working folder, so an older checkout (``git worktree add /tmp/sec-before REV``) runs with
this virtual environment. The script prints which ``syncplayd/__init__.py`` that imports
and refuses to go on if it is not the tree's. Give ``--tree`` twice for before/after
columns; the tables have one column per tree.

Scenario ``joins`` (``SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER=5``; the disconnect timeout
is raised to 120 s so that flood sockets, which do not heartbeat, stay for the count):

* *burst*: one token opens ``--burst`` sockets and says ``hello`` on each, then sends
  every ``join`` into one public room at once. Counted: the answers by type (``joined``,
  ``error`` code, ``closing`` reason, failures), the flood sockets still open
  ``--settle`` s later (and the daemon's ``syncplayd_connections``);
* *members + burst*: ``--members`` well-behaved members (fresh users, held by a listener
  worker process of ``bench/_common.py``: they read every frame as it comes and heartbeat
  every 5 s) are in the room while the same token makes ``--member-burst`` concurrent
  joins; then the flood sockets close. Counted: the members the daemon closed, by reason;
* *members + reconnect loop*: ``--loop-sockets`` sockets of one token join, close and join
  again as fast as they can for ``--loop-seconds``; counted as above, with the cycles.

Every part reports the daemon's ``VmRSS`` before and after, and from ``/metrics`` the
``presence`` messages it sent and the connections it closed as ``too-slow``.

Scenario ``passwords``: ``--putters`` users each own a room and PUT a new password to it
in a loop for ``--seconds``, while another room with a password is joined over REST
(``POST /rooms/{id}/join`` with the password) once a second, each time by a fresh user so
that each join checks the password. Reported: the daemon's peak ``VmRSS`` (sampled every
0.1 s) over its value just before, the PUTs and joins by status, the join latency (median,
p99, max) and, for reference, five joins before the flood. Aims: RSS growth at most
200 MB, join p99 at most 1 s.

Usage:  .venv/bin/python bench/security_floods.py [--tree PATH]... [--scenario both]
            [--seconds 30] [--burst 1000] [--members 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from _common import (
    ROOMS_PATH,
    WorkerHandle,
    create_rooms,
    machine_line,
    markdown_table,
    percentile,
    raise_open_files,
    sqlite_daemon,
    token,
    vm_rss_kib,
    ws_url,
)
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
)

from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user

CHECKOUT = Path(__file__).resolve().parent.parent
JOIN_ENV = {
    "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER": "5",
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "120",
}
ANSWER_TIMEOUT = 60.0  # seconds for a connect, a welcome or a join answer
LOOP_MAX_ATTEMPTS = 50_000  # the reconnect loop stops at this many attempts in all
MEMBER_HEARTBEAT = 5.0
PASSWORD = "popcorn-and-a-film"  # noqa: S105 - the guarded room's, made up
REQUEST_TIMEOUT = 60.0
IDLE_JOINS = 5
MIB = 1024  # KiB
AIM_RSS_GROWTH_MIB = 200e6 / 2**20  # 200 MB
AIM_JOIN_P99_S = 1.0

Row = dict[str, object]  # one part's measures, in table order


# -- the daemon from another tree ------------------------------------------------------------------
def _output(command: list[str], tree: Path, env: dict[str, str] | None = None) -> str:
    """What ``command`` prints, run in ``tree``; empty if it fails."""
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def tree_label(tree: Path) -> str:
    """``<short commit>`` of the tree's checkout, ``-dirty`` with uncommitted changes."""
    rev = _output(["git", "rev-parse", "--short", "HEAD"], tree) or tree.name
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"], tree)
    return rev + ("-dirty" if dirty else "")


def imported_package(tree: Path) -> Path:
    """The ``syncplayd/__init__.py`` this interpreter imports as the daemon will be run."""
    probe = [sys.executable, "-c", "import syncplayd; print(syncplayd.__file__)"]
    path = Path(_output(probe, tree, {**os.environ, "PYTHONPATH": str(tree)})).resolve()
    if not path.is_relative_to(tree) or path.name != "__init__.py":
        raise SystemExit(f"{tree}: the daemon would import {path}, not the tree's package")
    return path


@contextlib.contextmanager
def tree_daemon(tree: Path, env: dict[str, str]) -> Iterator[DaemonProcess]:
    """``sqlite_daemon`` run from ``tree``: its working folder and ``PYTHONPATH``.

    ``python -m`` puts the working folder first on ``sys.path``, so both are needed.
    """
    with contextlib.chdir(tree), sqlite_daemon({**env, "PYTHONPATH": str(tree)}) as daemon:
        pid = daemon.process.pid
        cwd = Path(f"/proc/{pid}/cwd").resolve()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if cwd != tree or f"PYTHONPATH={tree}".encode() not in environ:
            raise RuntimeError(f"daemon {pid} runs in {cwd}, not from {tree}")
        yield daemon


async def scrape(base_url: str) -> dict[str, float]:
    """Presence messages sent, ``too-slow`` closes and joined connections, from ``/metrics``."""
    wanted = {
        'syncplayd_messages_out_total{type="presence"}': "presence",
        'syncplayd_errors_total{code="too-slow"}': "too-slow",
        "syncplayd_connections": "connections",
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:
        text = (await http.get("/metrics")).text
    values = dict.fromkeys(wanted.values(), float("nan"))
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[wanted[name]] = float(value)
    return values


def mib(kib: float) -> float:
    return kib / MIB


# -- scenario 1: one token's sockets ---------------------------------------------------------------
class _Answer(msgspec.Struct):
    type: str
    code: str | None = None
    reason: str | None = None


_answer = msgspec.json.Decoder(_Answer)


def _close_code(exc: ConnectionClosed) -> int | None:
    return exc.reason.code if exc.reason is not None else None


async def _close(ws: WebSocketConnection) -> None:
    with trio.move_on_after(5) as scope:
        scope.shield = True
        await ws.aclose()


@dataclass(eq=False)
class Flooder:
    """One user's sockets: join attempts by answer, and what became of the joined ones."""

    url: str
    room_id: str
    principal: Principal = field(default_factory=lambda: new_user("flooder"))
    answers: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)  # joined, then closed by the daemon
    open: set[WebSocketConnection] = field(default_factory=set)
    attempts: int = 0
    _closing: bool = False

    async def welcome(self, nursery: trio.Nursery) -> WebSocketConnection | None:
        """A socket that has said ``hello`` and had ``welcome``; ``None`` (counted) if not."""
        self.attempts += 1
        headers = [(b"authorization", f"Bearer {token(self.principal)}".encode())]
        try:
            with trio.fail_after(ANSWER_TIMEOUT):
                ws = await connect_websocket_url(
                    nursery, self.url, extra_headers=headers, message_queue_size=16
                )
        except ConnectionRejected as exc:
            self.answers[f"handshake refused {exc.status_code}"] += 1
            return None
        except (OSError, HandshakeError, trio.TooSlowError) as exc:
            self.answers[f"connect failed ({type(exc).__name__})"] += 1
            return None
        outcome = await self._exchange(ws, '{"type":"hello","protocol":1}', "welcome")
        if outcome == "welcome":
            return ws
        self.answers[outcome] += 1
        await _close(ws)
        return None

    async def join(self, nursery: trio.Nursery, ws: WebSocketConnection, *, hold: bool) -> None:
        """Send ``join``, count the answer; keep a joined socket open (reading) if ``hold``."""
        join = json.dumps({"type": "join", "room_id": self.room_id})
        outcome = await self._exchange(ws, join, "joined")
        self.answers[outcome] += 1
        if outcome == "joined" and hold:
            self.open.add(ws)
            nursery.start_soon(self._hold, ws)
        else:
            await _close(ws)

    async def _exchange(self, ws: WebSocketConnection, text: str, wanted: str) -> str:
        try:
            with trio.fail_after(ANSWER_TIMEOUT):
                await ws.send_message(text)
                while True:
                    frame = _answer.decode(await ws.get_message())
                    if frame.type == wanted:
                        return wanted
                    if frame.type == "error":
                        return f"error {frame.code}"
                    if frame.type == "closing":
                        return f"closing {frame.reason}"
        except ConnectionClosed as exc:
            return f"socket closed ({_close_code(exc)})"
        except trio.TooSlowError:
            return "no answer"

    async def _hold(self, ws: WebSocketConnection) -> None:
        """Read (and drop) everything until the socket ends; count the daemon's closes."""
        reason = None
        try:
            while reason is None:
                text = await ws.get_message()
                if '"closing"' in text:
                    reason = f"closing {_answer.decode(text).reason}"
        except ConnectionClosed as exc:
            reason = f"socket closed ({_close_code(exc)})"
        self.open.discard(ws)
        if not self._closing:
            self.dropped[reason] += 1

    async def burst(self, nursery: trio.Nursery, count: int) -> float:
        """``count`` sockets say hello, then all join at once; seconds until the last answer."""
        welcomed: list[WebSocketConnection] = []

        async def hello() -> None:
            ws = await self.welcome(nursery)
            if ws is not None:
                welcomed.append(ws)

        async with trio.open_nursery() as connecting:
            for _ in range(count):
                connecting.start_soon(hello)
        start = time.monotonic()
        async with trio.open_nursery() as joining:
            for ws in welcomed:
                joining.start_soon(partial(self.join, hold=True), nursery, ws)
        return time.monotonic() - start

    async def reconnect_loop(self, nursery: trio.Nursery, sockets: int, seconds: float) -> int:
        """``sockets`` loops of connect, hello, join, close for ``seconds``; the cycles made."""
        deadline = time.monotonic() + seconds
        cycles = 0

        async def loop() -> None:
            nonlocal cycles
            while time.monotonic() < deadline and self.attempts < LOOP_MAX_ATTEMPTS:
                ws = await self.welcome(nursery)
                if ws is not None:
                    await self.join(nursery, ws, hold=False)
                cycles += 1

        async with trio.open_nursery() as loops:
            for _ in range(sockets):
                loops.start_soon(loop)
        return cycles

    async def close_all(self) -> None:
        """Close the held sockets (these closes are not counted as the daemon's)."""
        self._closing = True
        async with trio.open_nursery() as closing:
            for ws in list(self.open):
                closing.start_soon(_close, ws)


def _counts(prefix: str, counts: Counter[str]) -> Row:
    return {f"{prefix}: {key}": value for key, value in sorted(counts.items())}


async def join_burst(base_url: str, pid: int, args: argparse.Namespace) -> tuple[Row, Row]:
    """Part (a): ``--burst`` concurrent joins by one token, nobody else in the room."""
    [(room_id, _owner)] = await create_rooms(base_url, 1, max_participants=10)
    flooder = Flooder(ws_url(base_url), room_id)
    rss_before = vm_rss_kib(pid)
    async with trio.open_nursery() as nursery:
        seconds = await flooder.burst(nursery, args.burst)
        await trio.sleep(args.settle)
        still_open = len(flooder.open)
        metrics = await scrape(base_url)
        rss_held = vm_rss_kib(pid)
        await flooder.close_all()
        nursery.cancel_scope.cancel()
    await trio.sleep(args.settle)
    row: Row = {
        "join attempts": flooder.attempts,
        **_counts("answers", flooder.answers),
        "flood sockets open after the burst": still_open,
        "daemon's joined connections (metrics)": int(metrics["connections"]),
        **_counts("joined, then closed by the daemon", flooder.dropped),
        "seconds from the joins to the last answer": seconds,
        "RSS before MiB": mib(rss_before),
        "RSS with the sockets held MiB": mib(rss_held),
        "RSS after closing them MiB": mib(vm_rss_kib(pid)),
    }
    raw = {**row, "answers": dict(flooder.answers), "dropped": dict(flooder.dropped)}
    return row, raw


async def members_under_flood(
    base_url: str, pid: int, args: argparse.Namespace, kind: str
) -> tuple[Row, Row]:
    """Parts (b): ``--members`` members in the room, one token floods with joins."""
    url = ws_url(base_url)
    [(room_id, _owner)] = await create_rooms(base_url, 1, max_participants=args.members + 10)
    worker = await WorkerHandle.spawn()
    try:
        connected = await worker.connect(
            url, [(room_id, args.members)], MEMBER_HEARTBEAT, args.members
        )
        before = await scrape(base_url)
        rss_before = vm_rss_kib(pid)
        flooder = Flooder(url, room_id)
        extra: Row = {}
        async with trio.open_nursery() as nursery:
            start = time.monotonic()
            if kind == "burst":
                await flooder.burst(nursery, args.member_burst)
            else:
                cycles = await flooder.reconnect_loop(nursery, args.loop_sockets, args.loop_seconds)
                elapsed = time.monotonic() - start
                extra = {"loop cycles": cycles, "loop cycles/s": cycles / elapsed}
            flood_seconds = time.monotonic() - start
            await trio.sleep(args.settle)
            still_open = len(flooder.open)
            await flooder.close_all()
            await trio.sleep(args.settle)
            nursery.cancel_scope.cancel()
        after = await scrape(base_url)
        _receipts, alive, closed = await worker.report()
    finally:
        await worker.stop()
    row: Row = {
        "members joined": connected.ok,
        "members still connected at the end": alive,
        "members closed": len(closed),
        **_counts("members closed", Counter(closed)),
        "join attempts": flooder.attempts,
        **extra,
        **_counts("answers", flooder.answers),
        "flood sockets open after the flood": still_open,
        **_counts("joined, then closed by the daemon", flooder.dropped),
        "flood seconds": flood_seconds,
        "presence messages sent (metrics)": int(after["presence"] - before["presence"]),
        "too-slow closes (metrics)": int(after["too-slow"] - before["too-slow"]),
        "RSS before MiB": mib(rss_before),
        "RSS after MiB": mib(vm_rss_kib(pid)),
    }
    raw = {**row, "member_closes": closed, "answers": dict(flooder.answers)}
    return row, raw


# -- scenario 2: password changes ------------------------------------------------------------------
def _auth(principal: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(principal)}"}


async def _timed_join(http: httpx.AsyncClient, room_id: str) -> tuple[str, float]:
    """A fresh user joins ``room_id`` with its password: (status, seconds)."""
    start = time.monotonic()
    try:
        response = await http.post(
            f"{ROOMS_PATH}/{room_id}/join",
            headers=_auth(new_user("joiner")),
            json={"password": PASSWORD},
        )
        status = str(response.status_code)
    except httpx.TimeoutException:
        status = "timeout"
    return status, time.monotonic() - start


async def _put_loop(
    base_url: str, room_id: str, owner: Principal, statuses: Counter[str], seconds: list[float]
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:
        for n in range(1_000_000):
            start = time.monotonic()
            try:
                response = await http.put(
                    f"{ROOMS_PATH}/{room_id}", headers=_auth(owner), json={"password": f"pw-{n}"}
                )
                statuses[str(response.status_code)] += 1
            except httpx.TimeoutException:
                statuses["timeout"] += 1
            seconds.append(time.monotonic() - start)


def _threads(pid: int) -> int:
    """The threads of a process (``Threads`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Threads for {pid}")


async def _sample_rss(pid: int, samples: list[tuple[float, int, int]]) -> None:
    """Every 0.1 s: (seconds, ``VmRSS`` KiB, threads) of the daemon."""
    start = time.monotonic()
    while True:
        samples.append((time.monotonic() - start, vm_rss_kib(pid), _threads(pid)))
        await trio.sleep(0.1)


async def password_flood(base_url: str, pid: int, args: argparse.Namespace) -> tuple[Row, Row]:
    rooms = await create_rooms(base_url, args.putters + 1, max_participants=1000)
    (guarded, guard_owner), own_rooms = rooms[0], rooms[1:]
    samples: list[tuple[float, int, int]] = []
    puts: Counter[str] = Counter()
    put_seconds: list[float] = []
    joins: list[tuple[str, float]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:
        response = await http.put(
            f"{ROOMS_PATH}/{guarded}", headers=_auth(guard_owner), json={"password": PASSWORD}
        )
        if response.status_code != 200:
            raise RuntimeError(f"setting the password: {response.status_code} {response.text}")
        idle = [await _timed_join(http, guarded) for _ in range(IDLE_JOINS)]
        rss_before = vm_rss_kib(pid)

        async def join() -> None:
            joins.append(await _timed_join(http, guarded))

        async with trio.open_nursery() as sampler:
            sampler.start_soon(_sample_rss, pid, samples)
            start = trio.current_time()
            # The joins in flight outlive the PUT loops, which stop after ``--seconds``.
            async with trio.open_nursery() as joiners, trio.open_nursery() as putters:
                for room_id, owner in own_rooms:
                    putters.start_soon(_put_loop, base_url, room_id, owner, puts, put_seconds)
                for second in range(args.seconds):
                    joiners.start_soon(join)
                    await trio.sleep_until(start + second + 1)
                putters.cancel_scope.cancel()
            await trio.sleep(2)  # hashes the daemon had started still finish
            sampler.cancel_scope.cancel()
    peak = max(rss for _, rss, _ in samples)
    ok = [seconds for status, seconds in joins if status == "200"]
    join_statuses = Counter(status for status, _ in joins)
    row: Row = {
        "RSS before the flood MiB": mib(rss_before),
        "RSS peak MiB": mib(peak),
        "RSS growth (peak - before) MiB": mib(peak - rss_before),
        "RSS 2 s after the flood MiB": mib(samples[-1][1]),
        "RSS samples": len(samples),
        "daemon threads, most": max(threads for _, _, threads in samples),
        "PUTs answered": sum(puts.values()),
        **_counts("PUT status", puts),
        "PUT p50 ms": _ms(put_seconds, 50),
        "joins before the flood, p50 ms": _ms([s for _, s in idle], 50),
        "joins": len(joins),
        **_counts("join status", join_statuses),
        "join p50 ms": _ms(ok, 50),
        "join p99 ms": _ms(ok, 99),
        "join max ms": _ms(ok, 100),
        "aim RSS growth <= 200 MB": _met(mib(peak - rss_before) <= AIM_RSS_GROWTH_MIB),
        "aim join p99 <= 1 s": _met(bool(ok) and percentile(ok, 99) <= AIM_JOIN_P99_S),
    }
    raw = {
        **row,
        "idle_joins": idle,
        "joins": joins,
        "put_statuses": dict(puts),
        "samples_seconds_rss_kib_threads": samples,
    }
    return row, raw


def _ms(samples: list[float], q: float) -> float:
    return percentile(samples, q) * 1000 if samples else float("nan")


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


# -- running and reporting -------------------------------------------------------------------------
Part = Callable[[str, int, argparse.Namespace], Awaitable[tuple[Row, Row]]]
PARTS: dict[str, list[tuple[str, dict[str, str], Part]]] = {
    "joins": [
        ("(a) burst of joins, one token", JOIN_ENV, join_burst),
        (
            "(b) members + burst of joins",
            JOIN_ENV,
            lambda url, pid, args: members_under_flood(url, pid, args, "burst"),
        ),
        (
            "(b) members + reconnect loop",
            JOIN_ENV,
            lambda url, pid, args: members_under_flood(url, pid, args, "loop"),
        ),
    ],
    "passwords": [("password changes + password joins", {}, password_flood)],
}


#: The counts and durations: flag, type, default, least, most, meaning.
OPTIONS: list[tuple[str, type, float, float, float, str]] = [
    ("--burst", int, 1000, 1, 2000, "part (a): concurrent joins"),
    ("--members", int, 20, 1, 200, "parts (b): well-behaved members"),
    ("--member-burst", int, 300, 1, 2000, "part (b): concurrent joins"),
    ("--loop-sockets", int, 10, 1, 100, "part (b): reconnect-loop sockets"),
    ("--loop-seconds", float, 10.0, 0.1, 60, "part (b): reconnect-loop seconds"),
    ("--settle", float, 3.0, 0, 30, "seconds of quiet after each flood of joins"),
    ("--seconds", int, 30, 1, 300, "password flood seconds"),
    ("--putters", int, 8, 1, 32, "password changers, one room each"),
]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def run_tree(tree: Path, scenarios: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every part of ``scenarios`` against daemons from ``tree``: {part: (row, raw)}."""
    results: dict[str, Any] = {}
    for scenario in scenarios:
        for title, env, part in PARTS[scenario]:
            print(f"# {tree_label(tree)}: {title} ...", file=sys.stderr, flush=True)
            with tree_daemon(tree, env) as daemon:
                results[title] = trio.run(part, daemon.base_url, daemon.process.pid, args)
                tracebacks = sum("Traceback" in line for line in daemon.log_lines)
            results[title][1]["daemon_tracebacks"] = tracebacks
    return results


def print_tables(labels: list[str], runs: list[dict[str, Any]]) -> None:
    for title in runs[0]:
        keys: list[str] = []  # each run's order, a key missing so far after its predecessor
        for run in runs:
            at = 0
            for key in run[title][0]:
                if key not in keys:
                    keys.insert(at, key)
                at = keys.index(key) + 1
        rows = {key: [run[title][0].get(key, "-") for run in runs] for key in keys}
        print(f"\n**{title}**\n")
        print(
            markdown_table(["measure", *labels], [[key, *values] for key, values in rows.items()])
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        help="source tree to run the daemon from; twice for before/after (default: this checkout)",
    )
    parser.add_argument(
        "--scenario", choices=["both", "joins", "passwords"], default="both", help="what to run"
    )
    for flag, kind, default, _low, _high, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write every number here as JSON")
    args = parser.parse_args()
    for flag, _kind, _default, low, high, _text in OPTIONS:
        if not low <= getattr(args, flag[2:].replace("-", "_")) <= high:
            parser.error(f"{flag} must be within {low}..{high}")
    trees = [tree.resolve() for tree in args.tree or [CHECKOUT]]
    scenarios = ["joins", "passwords"] if args.scenario == "both" else [args.scenario]
    raise_open_files()
    print(machine_line())
    print(f"# CPU: nproc {len(os.sched_getaffinity(0))}, {cpu_model()}")
    print("# command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    labels = []
    for tree in trees:
        labels.append(tree_label(tree))
        print(f"# {labels[-1]}: {tree}, imports {imported_package(tree)}")
    runs = []
    for tree in trees:
        started = time.monotonic()
        runs.append(run_tree(tree, scenarios, args))
        print(f"# {tree_label(tree)}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    print_tables(labels, runs)
    if args.json is not None:
        raw = {
            label: {title: r[1] for title, r in run.items()}
            for label, run in zip(labels, runs, strict=True)
        }
        args.json.write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
