"""Fixtures of the storage tests that race two nodes on one PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from syncplayd.storage import Repository, open_repository
from tests.conftest import fresh_database


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", request, tmp_path) as url:
        yield url


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[tuple[Repository, Repository]]:
    """Two repositories on one database, as two nodes have: two pools, 20 connections."""
    first = await open_repository(pg_url, pool_size=10)
    try:
        second = await open_repository(pg_url, pool_size=10)
        try:
            yield first, second
        finally:
            await second.aclose()
    finally:
        await first.aclose()
