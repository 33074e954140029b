"""Accuracy benchmark: the error of each client's estimate of the room position.

Starts a daemon (SQLite) and, per delay profile, one room of ``--clients``
Python clients (:func:`syncplayd.client.open_sync_client`, ``--fast-pings``
pings 50 ms apart then the client's slow pings every 10 s, a clock skew drawn
from ``±--skew`` seconds). Each client connects
through its own TCP delay proxy on 127.0.0.1, run in this process: every chunk
read in one direction is released ``base + jitter`` later (exponential jitter
with the given mean), never before the previous chunk of that direction, so
byte order is kept. One client presses play; once the change has executed
and the clocks have settled, every ``--every`` seconds for ``--seconds``:

    error = client.room_position() - position_at(client.playback, true server time)

The true server time is ``time.monotonic()`` plus the daemon's shift, measured
before the run by pinging the daemon directly (the best of 200 loopback pings;
its uncertainty is printed). The daemon's clock is trio's (``CLOCK_MONOTONIC``)
shifted to Unix time once at start (``syncplayd/clocks.py``).

NTP-style estimation cannot see a path's asymmetry: a client whose way up is
slower than its way down is off by half the difference, whatever it does. The
column "asymmetry/2" gives that floor (median over the profile's clients), and
"beyond asymmetry" the error once each client's floor is subtracted: what jitter,
the estimator and the client add. Errors are absolute values, in milliseconds;
"player" is the client's local player (``client.player.position()``) against
the same truth.

A profile is ``name=UP/DOWN/UP_JITTER/DOWN_JITTER`` in milliseconds; UP and DOWN
are a value or a ``LOW-HIGH`` range (drawn per client), DOWN may be ``=`` (the
same as that client's UP).

Usage:  .venv/bin/python bench/accuracy.py [--clients 10] [--seconds 10]
            [--every 0.02] [--settle 1] [--skew 5] [--fast-pings 5] [--seed 1]
            [--profile NAME=UP/DOWN/UPJ/DOWNJ ...]
Results go to stdout as a markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from functools import partial

import trio
from _common import (
    create_rooms,
    machine_line,
    markdown_table,
    sqlite_daemon,
    summary,
    token,
    ws_url,
)
from trio_websocket import open_websocket_url

from syncplayd.client import ClientOptions, SyncClient, open_sync_client
from syncplayd.core.clock import position_at
from syncplayd.core.protocol import PlaybackChanged
from tests.daemon_process import new_user

DEFAULT_PROFILES = [
    "lan=10/=/1/1",
    "symmetric=10-150/=/2/20",
    "asymmetric=10-150/10-150/5/5",
    "mobile=80/40/10/30",
]
ENV = {"SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "1000"}


@dataclass(frozen=True, slots=True)
class Profile:
    """A delay profile: base one-way delays (ranges) and mean jitters, milliseconds."""

    name: str
    spec: str
    up: tuple[float, float]
    down: tuple[float, float] | None  # None: the same as up
    up_jitter: float
    down_jitter: float

    @classmethod
    def parse(cls, text: str) -> Profile:
        name, _, spec = text.partition("=")
        parts = spec.split("/")
        if not name or len(parts) != 4:
            raise ValueError(f"bad profile {text!r}: want NAME=UP/DOWN/UP_JITTER/DOWN_JITTER")

        def span(part: str) -> tuple[float, float]:
            low, _, high = part.partition("-")
            return float(low), float(high or low)

        up = span(parts[0])
        down = None if parts[1] == "=" else span(parts[1])
        values = [*up, *(down or ()), float(parts[2]), float(parts[3])]
        if not all(0 <= value <= 2000 for value in values):
            raise ValueError(f"bad profile {text!r}: delays must be within 0..2000 ms")
        return cls(name, spec, up, down, float(parts[2]), float(parts[3]))

    def draw(self, rng: random.Random) -> Link:
        up = rng.uniform(*self.up)
        down = up if self.down is None else rng.uniform(*self.down)
        return Link(up / 1e3, down / 1e3, self.up_jitter / 1e3, self.down_jitter / 1e3)


@dataclass(frozen=True, slots=True)
class Link:
    """One client's path, seconds: base one-way delays and mean jitters."""

    up: float
    down: float
    up_jitter: float
    down_jitter: float


# -- the delay proxy -------------------------------------------------------------------------------
async def _pipe(
    source: trio.SocketStream,
    sink: trio.SocketStream,
    base: float,
    jitter: float,
    rng: random.Random,
) -> None:
    """Copy ``source`` to ``sink``, each chunk ``base + Exp(jitter)`` later, in order."""
    send, receive = trio.open_memory_channel[tuple[float, bytes]](math.inf)

    async def release() -> None:
        async with receive:
            async for due, data in receive:
                await trio.sleep_until(due)
                await sink.send_all(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(release)
        async with send:
            last = 0.0
            while data := await source.receive_some(65536):
                delay = base + (rng.expovariate(1 / jitter) if jitter > 0 else 0.0)
                last = max(last, trio.current_time() + delay)
                send.send_nowait((last, data))


async def _relay(client: trio.SocketStream, port: int, link: Link, rng: random.Random) -> None:
    try:
        server = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        await client.aclose()
        return
    try:
        async with trio.open_nursery() as nursery:

            async def one_way(
                source: trio.SocketStream, sink: trio.SocketStream, base: float, jitter: float
            ) -> None:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await _pipe(source, sink, base, jitter, rng)
                nursery.cancel_scope.cancel()  # one side is gone: end the other

            nursery.start_soon(one_way, client, server, link.up, link.up_jitter)
            nursery.start_soon(one_way, server, client, link.down, link.down_jitter)
    finally:
        await client.aclose()
        await server.aclose()


async def start_proxy(nursery: trio.Nursery, port: int, link: Link, seed: int) -> int:
    """Listen on 127.0.0.1 (a free port, returned) and relay to ``port`` over ``link``."""
    rng = random.Random(seed)
    listeners = await nursery.start(
        partial(trio.serve_tcp, lambda stream: _relay(stream, port, link, rng), 0, host="127.0.0.1")
    )
    listen_port: int = listeners[0].socket.getsockname()[1]
    return listen_port


# -- the truth -------------------------------------------------------------------------------------
async def server_shift(url: str, pings: int = 200) -> tuple[float, float]:
    """The daemon's clock minus ``time.monotonic()``, and its uncertainty (half the best RTT).

    Pings before ``hello`` are answered by the handshake: ``t1``/``t2`` are the
    daemon's receive/send times. The exchange with the shortest network time wins.
    """
    best: tuple[float, float] | None = None
    async with open_websocket_url(url, message_queue_size=4) as ws:
        for i in range(pings):
            t0 = time.monotonic()
            await ws.send_message(json.dumps({"type": "ping", "id": i, "t0": t0}))
            pong = json.loads(await ws.get_message())
            t3 = time.monotonic()
            delay = (t3 - t0) - (pong["t2"] - pong["t1"])
            shift = ((pong["t1"] - t0) + (pong["t2"] - t3)) / 2
            if best is None or delay < best[1]:
                best = (shift, delay)
            await trio.sleep(0.002)
    assert best is not None
    return best[0], best[1] / 2


# -- one profile -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Result:
    profile: Profile
    clients: int
    room_error: list[float]  # ms, |estimate - truth|, every client x sample
    residual: list[float]  # ms, |estimate - truth - (up - down) / 2|: beyond the floor
    player_error: list[float]  # ms, |local player - truth|
    asymmetry: list[float]  # ms, |up - down| / 2 per client (base delays)
    offsets: list[float]  # ms, the clients' final clock-offset error
    clock_samples: int  # the fewest clock samples any client had when sampling began


async def run_profile(
    base_url: str, shift: float, profile: Profile, args: argparse.Namespace, seed: int
) -> Result:
    rng = random.Random(seed)
    port = int(base_url.rsplit(":", 1)[1])
    [(room_id, owner)] = await create_rooms(base_url, 1, max_participants=args.clients + 5)
    links = [profile.draw(rng) for _ in range(args.clients)]
    options = ClientOptions(fast_ping_interval=0.05, fast_ping_count=args.fast_pings)
    room_error: list[float] = []
    residual: list[float] = []
    player_error: list[float] = []
    offsets: list[float] = []
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        clients: list[SyncClient] = []
        for i, link in enumerate(links):
            proxy = await start_proxy(nursery, port, link, seed * 1000 + i)
            url = ws_url(f"http://127.0.0.1:{proxy}")
            principal = owner if i == 0 else new_user(f"client{i}")
            skew = rng.uniform(-args.skew, args.skew)
            client = await stack.enter_async_context(
                open_sync_client(
                    url, token(principal), room_id=room_id, clock_skew=skew, options=options
                )
            )
            clients.append(client)
        mark = clients[0].received_count
        await clients[0].play()
        change = await clients[0].wait_for(
            lambda m: isinstance(m, PlaybackChanged), timeout=10, since=mark
        )
        assert isinstance(change, PlaybackChanged)
        # Wait until every client has the change and it has executed.
        for client in clients:
            while client.playback.version < change.playback.version:
                await client.wait_for(lambda m: isinstance(m, PlaybackChanged), timeout=10)
        due = change.execute_at + 0.5 - (time.monotonic() + shift)
        await trio.sleep(max(0.0, due))
        # The clock estimates rest on every fast ping (welcome and joined count too).
        with trio.fail_after(30):
            for client in clients:
                await client.wait_clock_samples(args.fast_pings + 2)
        await trio.sleep(args.settle)
        samples = min(client.clock_samples for client in clients)
        deadline = trio.current_time() + args.seconds
        while trio.current_time() < deadline:
            for client, link in zip(clients, links, strict=True):
                # No checkpoint in here: the three readings are one instant.
                estimate = client.room_position()
                player = client.player.position(client.local_time())
                truth = position_at(client.playback, time.monotonic() + shift)
                room_error.append(abs(estimate - truth) * 1e3)
                # A slower way up makes the NTP offset, and so the position, ahead by half
                # the difference (at rate 1).
                residual.append(abs(estimate - truth - (link.up - link.down) / 2) * 1e3)
                player_error.append(abs(player - truth) * 1e3)
            await trio.sleep(args.every * rng.uniform(0.5, 1.5))
        for client in clients:
            true_offset = (time.monotonic() + shift) - client.local_time()
            offsets.append((client.clock_offset - true_offset) * 1e3)
        nursery.cancel_scope.cancel()
    asymmetry = [abs(link.up - link.down) / 2 * 1e3 for link in links]
    return Result(
        profile, len(links), room_error, residual, player_error, asymmetry, offsets, samples
    )


async def run_all(base_url: str, profiles: list[Profile], args: argparse.Namespace) -> None:
    shift, uncertainty = await server_shift(ws_url(base_url))
    wall = time.time() - time.monotonic()
    print(
        "# true server clock = time.monotonic() + shift, shift known to "
        f"±{uncertainty * 1e3:.3f} ms (time.time() - time.monotonic() differs by "
        f"{(wall - shift) * 1e3:+.3f} ms)\n"
    )
    rows = []
    for i, profile in enumerate(profiles):
        result = await run_profile(base_url, shift, profile, args, args.seed + i)
        room = summary(result.room_error)
        player = summary(result.player_error)
        rows.append(
            (
                profile.name,
                profile.spec,
                result.clients,
                room.count,
                room.p50,
                room.p95,
                room.max,
                summary(result.asymmetry).p50,
                summary(result.residual).p95,
                player.p95,
            )
        )
        worst = max(result.offsets, key=abs)
        print(
            f"# {profile.name}: worst final clock-offset error {worst:+.2f} ms; "
            f"at least {result.clock_samples} clock samples per client"
        )
    headers = [
        "profile",
        "up/down/jitter ms",
        "clients",
        "samples",
        "error p50 ms",
        "error p95 ms",
        "error max ms",
        "asymmetry/2 p50 ms",
        "error beyond asymmetry p95 ms",
        "player error p95 ms",
    ]
    print()
    print(markdown_table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, default=10, help="clients per profile (default: %(default)s)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="sampling time per profile (default: %(default)s)",
    )
    parser.add_argument(
        "--every",
        type=float,
        default=0.02,
        help="mean seconds between samples (default: %(default)s)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="extra seconds before sampling (default: %(default)s)",
    )
    parser.add_argument(
        "--skew",
        type=float,
        default=5.0,
        help="client clock skews are drawn from ±SKEW seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--profile",
        action="append",
        help="NAME=UP/DOWN/UP_JITTER/DOWN_JITTER in ms, repeatable "
        f"(default: {' '.join(DEFAULT_PROFILES)})",
    )
    parser.add_argument(
        "--fast-pings",
        type=int,
        default=5,
        help="ClientOptions.fast_ping_count: pings 50 ms apart at the start of a connection "
        "(default: %(default)s, the client's default)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    args = parser.parse_args()
    if not 1 <= args.clients <= 100 or not 0 < args.seconds <= 120 or not 0.001 <= args.every <= 1:
        parser.error("--clients within 1..100, --seconds within 0..120, --every within 0.001..1")
    if not 1 <= args.fast_pings <= 100:
        parser.error("--fast-pings within 1..100")
    try:
        profiles = [Profile.parse(text) for text in args.profile or DEFAULT_PROFILES]
    except ValueError as exc:
        parser.error(str(exc))
    print(machine_line())
    print(
        f"# {args.clients} clients per profile, skew ±{args.skew:g} s, "
        f"{args.fast_pings} fast pings, sampling every ~{args.every * 1e3:g} ms "
        f"for {args.seconds:g} s"
    )
    with sqlite_daemon(ENV) as daemon:
        trio.run(run_all, daemon.base_url, profiles, args)


if __name__ == "__main__":
    main()
