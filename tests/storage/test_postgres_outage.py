"""A lost PostgreSQL database is reported quickly, and the repository recovers.

The daemon answers ``/readyz`` and the API from these errors, so "quickly" matters:
an HTTP client gives up long before a connect timeout would run out.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from syncplayd.storage import StorageUnavailable, open_repository
from syncplayd.storage.postgres import CONNECT_TIMEOUT_SECONDS
from tests.conftest import fresh_database

pytestmark = pytest.mark.postgres


def _admin(server_url: str, statement: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


async def test_lost_database_fails_fast_and_recovers(
    postgres_server_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server_url = postgres_server_url
    with fresh_database("postgres", request, tmp_path) as url:
        name = str(conninfo_to_dict(url)["dbname"])
        repo = await open_repository(url, pool_size=4)
        try:
            await repo.ping()
            await trio.to_thread.run_sync(_admin, server_url, "DROP DATABASE {} WITH (FORCE)", name)
            # Well under the connect timeout, every time.
            for _ in range(3):
                with (
                    trio.fail_after(CONNECT_TIMEOUT_SECONDS / 2),
                    pytest.raises(StorageUnavailable),
                ):
                    await repo.ping()

            await trio.to_thread.run_sync(_admin, server_url, "CREATE DATABASE {}", name)
            with trio.fail_after(30):
                while True:
                    try:
                        await repo.ping()
                    except StorageUnavailable:
                        continue  # each failed try waits for the pool, no busy loop
                    break
        finally:
            await repo.aclose()
