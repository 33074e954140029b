"""Micro-benchmark of the daemon's path from a member's ``play`` to the broadcast's writes.

One live room of ``--members`` members, each on a real :class:`DirectSocket` over
a Unix socket pair, in one trio process with the daemon's own classes (the live
room, its connections, the engine, the metrics, an in-memory repository behind
the service). A member sends ``play`` and ``pause`` in turn as masked WebSocket
frames; nobody else runs. For each frame it times, with ``time.perf_counter_ns``:

* **first write**: from just before the client's frame is written to its socket
  until the room starts writing the broadcast's first copy (trio's wake-up, the
  read, the frame reader, rate limit, decoding, the engine, the encoding);
* **last write**: until the last copy is written (the first, plus one socket
  write per member);
* **done**: until the reader task waits for the next frame (what the room does
  after the writes: metrics, the write-behind's queue).

With ``--cold`` (the default) the CPU caches are evicted before every frame
(``--evict-mib`` MiB touched, more than the last-level cache), as the daemon
meets them after ~100 ms of other processes' work between two commands (see
docs/benchmarks.md, "Side by side with Syncplay's server": inside the daemon a
50-member play took ~125 µs from the read to the first write, against ~10 warm).
``--warm`` times the same with whatever the previous frame left in the caches.

No network: the sockets are socket pairs, nothing is read back but the bytes that
pile up (drained between frames), and the loop is bounded by ``--frames``.

Usage:  .venv/bin/python bench/play_path.py [--members 50] [--frames 400] [--warm]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import uuid4

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peer_clients import client_frame
from engine import evictor, percentile

from syncplayd.clocks import ServerClock
from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.server.live.connection import DirectConnection
from syncplayd.server.live.direct_socket import DirectSocket
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.supervisor import RoomSupervisor
from syncplayd.server.metrics import Metrics
from syncplayd.service import RoomService
from syncplayd.storage import MemoryRepository
from syncplayd.storage.records import Role


class TimedSocket(DirectSocket):
    """A :class:`DirectSocket` noting when each of its writes starts (in one shared list)."""

    marks: list[int]

    def write(self, data: bytes) -> bool:
        self.marks.append(time.perf_counter_ns())
        return super().write(data)


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as state_dir:
        settings = load_settings(
            None,
            {
                "SYNCPLAY_STATE_DIR": state_dir,
                "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "1000",
            },
        )
        repo = MemoryRepository()
        service = RoomService(repo, settings.syncplay)
        persister = Persister(repo)
        metrics = Metrics(runtime_collectors=False)
        supervisor = RoomSupervisor(settings, service, persister, ServerClock(), metrics)
        service.live = supervisor
        owner = Principal(uuid4(), "owner")
        room = await service.create_room(
            owner, name="bench", content_type="movie", content_id="1", is_public=True,
            password=None, max_participants=args.members + 5,
        )  # fmt: skip
        marks: list[int] = []
        clients: list[socket.socket] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(persister.run)
            await nursery.start(supervisor.run)
            queue = await service.queue.get(owner, room.id)
            live = await supervisor.live_room(room, queue)
            for i in range(args.members):
                principal = Principal(uuid4(), f"member {i}")
                participant, _ = await repo.add_participant(
                    room.id, principal.user_id, f"member {i}", Role.MEMBER, room.created_at
                )
                ours, theirs = socket.socketpair()
                ours.setblocking(False)
                theirs.setblocking(False)
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
                direct = TimedSocket(
                    stream, b"", max_message_bytes=65536, spawn=nursery.start_soon,
                    send_timeout=None,
                )  # fmt: skip
                direct.marks = marks
                connection = DirectConnection(direct, principal, ServerClock().now, metrics)
                await live.attach(connection, participant, room, [], None)
                clients.append(theirs)
            await trio.sleep(1)  # the presence window of the joins goes out
            sender = clients[0]
            frames = [
                client_frame(0x1, json.dumps({"type": kind}).encode()) for kind in ("play", "pause")
            ]
            evict = evictor(args.evict_mib)
            timings: dict[str, list[float]] = {"first": [], "last": [], "done": []}
            gc.collect()
            gc.freeze()
            for n in range(args.frames):
                for client in clients:  # what piled up: the sockets' buffers stay far from full
                    try:
                        while client.recv(1 << 16):
                            pass
                    except BlockingIOError:
                        pass
                await trio.sleep(0.002)  # the room's other tasks settle
                marks.clear()
                if not args.warm:
                    evict()
                started = time.perf_counter_ns()
                sender.send(frames[n % 2])
                # Back here once the reader has handled the frame and waits for the next.
                await trio.testing.wait_all_tasks_blocked()
                done = time.perf_counter_ns()
                if len(marks) < args.members:
                    raise SystemExit(f"frame {n}: {len(marks)} writes, not {args.members}")
                timings["first"].append((marks[0] - started) / 1000)
                timings["last"].append((marks[-1] - started) / 1000)
                timings["done"].append((done - started) / 1000)
            nursery.cancel_scope.cancel()
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--warm", action="store_true", help="do not evict the caches")
    parser.add_argument("--evict-mib", type=int, default=64)
    args = parser.parse_args()
    timings = trio.run(run, args)
    caches = "warm" if args.warm else f"cold ({args.evict_mib} MiB evicted before each frame)"
    print(f"Python {platform.python_version()}, {args.members} members, {caches}, µs:")
    for name, values in timings.items():
        print(f"  {name:6} p50 {statistics.median(values):7.1f}  p90 {percentile(values, 90):7.1f}")


if __name__ == "__main__":
    main()
