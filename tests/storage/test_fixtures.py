"""The database fixtures hand out URLs that other processes (daemons under test) can use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import postgres_url_for

OPEN_AND_MIGRATE = """
import sys, trio
from syncplayd.storage import RoomFilters, open_repository

async def main() -> None:
    repo = await open_repository(sys.argv[1])
    try:
        print(await repo.list_rooms(RoomFilters(), 1, 0))
    finally:
        await repo.aclose()

trio.run(main)
"""


def test_database_url_works_from_another_process(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", OPEN_AND_MIGRATE, database_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "([], 0)"


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg-x/data",
            "postgresql://postgres@/syncplay_t?host=/tmp/pg-x/data",
        ),
        (
            "postgresql://u:p%40ss@127.0.0.1:55432/syncplay_test?sslmode=disable",
            "postgresql://u:p%40ss@127.0.0.1:55432/syncplay_t?sslmode=disable",
        ),
        (
            "host=/run/postgresql port=5433 user=postgres dbname=other",
            "postgresql://postgres@/syncplay_t?host=/run/postgresql&port=5433",
        ),
    ],
    ids=["unix-socket-url", "tcp-url", "key-value"],
)
def test_postgres_url_for(server: str, expected: str) -> None:
    assert postgres_url_for(server, "syncplay_t") == expected
