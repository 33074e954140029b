"""A daemon process per storage backend, shared by the API tests of a module.

Tests isolate themselves by using fresh users and rooms, so one daemon serves
a whole module; tests that restart the daemon start their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.daemon_process import DaemonProcess, run_daemon

# Small limits so the tests can reach them quickly.
TEST_ENV = {
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "20",
    "SYNCPLAY_CHAT_HISTORY_LIMIT": "50",
    "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH": "300",
    "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": "25",
    "SYNCPLAY_INVITATIONS_CODE_LENGTH": "10",
}


def create_postgres_database(server_url: str) -> str:
    """Create an empty database on the server and return its URL."""
    name = f"syncplay_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo("", **info)  # type: ignore[arg-type]


def to_url(conninfo: str) -> str:
    """A libpq key=value string as a postgresql:// URL the daemon accepts."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    host = str(info.pop("host", ""))
    port = info.pop("port", None)
    user = info.pop("user", "postgres")
    password = info.pop("password", "")
    dbname = info.pop("dbname", "postgres")
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        query = f"?host={host}" + (f"&port={port}" if port else "")
        return f"postgresql://{auth}/{dbname}{query}"
    netloc = host + (f":{port}" if port else "")
    return f"postgresql://{auth}{netloc}/{dbname}"


def backend_database_url(backend: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'syncplayd.sqlite3'}"
    server_url: str = request.getfixturevalue("postgres_server_url")
    return to_url(create_postgres_database(server_url))


BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def backend_daemon(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    env: Mapping[str, str] | None = None,
) -> Iterator[DaemonProcess]:
    """A daemon on the backend ``request.param`` names, checked when the tests are done.

    Whatever the tests did, the daemon must not have crashed or logged a traceback.
    """
    folder = tmp_path_factory.mktemp(f"{name}-{request.param}")
    url = backend_database_url(request.param, request, folder)
    with run_daemon(url, folder / "state", env) as process:
        yield process
        assert process.process.poll() is None, "the daemon died during the tests"
        assert not any("Traceback" in line for line in process.log_lines), "\n".join(
            process.log_lines
        )


@pytest.fixture(scope="module", params=BACKENDS)
def daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with backend_daemon(request, tmp_path_factory, "daemon", TEST_ENV) as process:
        yield process
