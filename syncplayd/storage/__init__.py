"""Durable storage: the :class:`Repository` contract, its engines and the migrations.

Pick an engine by URL with :func:`open_repository`:

* ``sqlite:///PATH`` -- one SQLite file; the path is everything after the three
  slashes, so an absolute path gives four (``sqlite:////var/lib/syncplayd/db.sqlite3``);
* ``postgresql://...`` or ``postgres://...`` -- any libpq URL;
* ``memory://`` -- the in-memory fake (nothing survives the process).

Wrap any of them in :class:`TimedRepository` to report how long each call takes.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Literal

import psycopg
import trio

from syncplayd.storage import migrations
from syncplayd.storage import postgres as _postgres
from syncplayd.storage import sqlite as _sqlite
from syncplayd.storage.base import Repository as Repository
from syncplayd.storage.errors import DuplicateCode as DuplicateCode
from syncplayd.storage.errors import NotAParticipant as NotAParticipant
from syncplayd.storage.errors import RoomEnded as RoomEnded
from syncplayd.storage.errors import RoomFull as RoomFull
from syncplayd.storage.errors import RoomNotFound as RoomNotFound
from syncplayd.storage.errors import SchemaTooNew as SchemaTooNew
from syncplayd.storage.errors import StorageError as StorageError
from syncplayd.storage.errors import StorageUnavailable as StorageUnavailable
from syncplayd.storage.errors import TooManyInvitations as TooManyInvitations
from syncplayd.storage.memory import MemoryRepository as MemoryRepository
from syncplayd.storage.migrations import SCHEMA_VERSION as SCHEMA_VERSION
from syncplayd.storage.migrations import MigrationStatus as MigrationStatus
from syncplayd.storage.postgres import PostgresRepository as PostgresRepository
from syncplayd.storage.records import AttemptBudget as AttemptBudget
from syncplayd.storage.records import ChatMessage as ChatMessage
from syncplayd.storage.records import Event as Event
from syncplayd.storage.records import Invitation as Invitation
from syncplayd.storage.records import NewEvent as NewEvent
from syncplayd.storage.records import NewRoom as NewRoom
from syncplayd.storage.records import NodeRecord as NodeRecord
from syncplayd.storage.records import Participant as Participant
from syncplayd.storage.records import Playback as Playback
from syncplayd.storage.records import PlaybackState as PlaybackState
from syncplayd.storage.records import PresenceUpdate as PresenceUpdate
from syncplayd.storage.records import Restriction as Restriction
from syncplayd.storage.records import RestrictionKind as RestrictionKind
from syncplayd.storage.records import Role as Role
from syncplayd.storage.records import Room as Room
from syncplayd.storage.records import RoomFilters as RoomFilters
from syncplayd.storage.records import RoomOwner as RoomOwner
from syncplayd.storage.records import RoomUpdate as RoomUpdate
from syncplayd.storage.sqlite import SqliteRepository as SqliteRepository
from syncplayd.storage.timed import RepositoryObserver as RepositoryObserver
from syncplayd.storage.timed import TimedRepository as TimedRepository

Engine = Literal["sqlite", "postgres", "memory"]

SQLITE_PREFIX = "sqlite:///"
MEMORY_URL = "memory://"


def parse_url(url: str) -> tuple[Engine, str]:
    """Split a database URL into its engine and what that engine opens.

    Returns ``("sqlite", path)``, ``("postgres", url)`` or ``("memory", "")``.

    Raises:
        ValueError: not a URL this package understands.
    """
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            # Readers and the writer are separate connections: they need a file.
            raise ValueError("a sqlite:/// URL needs a file path after the three slashes")
        return "sqlite", path
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres", url
    if url == MEMORY_URL:
        return "memory", ""
    raise ValueError(
        "expected a URL starting with sqlite:///, postgresql://, postgres:// or memory://"
    )


async def open_repository(
    url: str, *, pool_size: int = 10, auto_migrate: bool = True
) -> Repository:
    """Open the repository a URL names and make sure its schema fits this code.

    Args:
        url: see the module docstring.
        pool_size: PostgreSQL connections (and worker threads); for SQLite, reader
            connections (the writer is always one).
        auto_migrate: apply pending migrations; when false, a database that is
            behind raises instead.

    Raises:
        SchemaTooNew: a newer syncplayd migrated the database (always refused).
        StorageError: the schema is behind and ``auto_migrate`` is false.
        StorageUnavailable: the database cannot be reached or opened.
        ValueError: the URL is not understood.
    """
    engine, target = parse_url(url)
    if engine == "sqlite":
        return await SqliteRepository.open(
            target, readers=max(1, pool_size), auto_migrate=auto_migrate
        )
    if engine == "postgres":
        return await PostgresRepository.open(target, pool_size=pool_size, auto_migrate=auto_migrate)
    return MemoryRepository()


def _migrate(
    conn: migrations.Connection,
    dialect: migrations.Dialect,
    action: Literal["up", "down", "status"],
    target: int | None,
    steps: int,
) -> list[str]:
    if action == "up":
        done = migrations.migrate_up(conn, dialect, target)
        version = migrations.current_version(conn, dialect)
        return [f"applied {m.version:04d}_{m.name}" for m in done] + [
            f"schema version {version} (this syncplayd: {SCHEMA_VERSION})"
        ]
    if action == "down":
        done = migrations.migrate_down(conn, dialect, steps)
        version = migrations.current_version(conn, dialect)
        return [f"reverted {m.version:04d}_{m.name}" for m in done] + [
            f"schema version {version} (this syncplayd: {SCHEMA_VERSION})"
        ]
    lines = []
    for s in migrations.status(conn, dialect):
        if not s.known:
            state = "applied by a newer syncplayd"
        elif s.applied_at is None:
            state = "pending"
        else:
            state = f"applied {s.applied_at.isoformat(timespec='seconds')}"
        lines.append(f"{s.version:04d}_{s.name}  {state}")
    return lines


async def run_migrations(
    url: str,
    action: Literal["up", "down", "status"],
    *,
    target: int | None = None,
    steps: int = 1,
) -> list[str]:
    """Migrate a database up or down, or report its migrations, for the CLI.

    Args:
        url: see the module docstring.
        action: ``up`` (to ``target``, default all), ``down`` (``steps`` newest) or
            ``status``.

    Returns:
        Human-readable lines: what was done, then the resulting version (or, for
        ``status``, one line per migration).

    Raises:
        SchemaTooNew: ``up``/``down`` on a database newer than this code.
        StorageError: a migration failed (it was rolled back) or cannot be reverted.
        StorageUnavailable: the database cannot be reached.
        ValueError: the URL, ``action``, ``target`` or ``steps`` is not valid.
    """
    if action not in ("up", "down", "status"):
        raise ValueError(f"unknown migration action {action!r}")
    engine, where = parse_url(url)
    if engine == "memory":
        return ["memory:// keeps no schema: nothing to migrate"]

    def work() -> list[str]:
        if engine == "sqlite":
            path = Path(where)
            if action == "up":
                _sqlite.create_private(path)
            elif not path.exists():
                # Report on an empty database without creating the file.
                path = Path(":memory:")
            with closing(_sqlite.connect(path)) as conn:
                return _migrate(conn, "sqlite", action, target, steps)
        with psycopg.connect(where, autocommit=True, connect_timeout=10) as pg:
            return _migrate(pg, "postgres", action, target, steps)

    try:
        return await trio.to_thread.run_sync(work)
    except sqlite3.Error as exc:
        raise _sqlite.translate_error(exc) from exc
    except psycopg.Error as exc:
        raise _postgres.translate_error(exc) from exc
    except OSError as exc:
        raise StorageUnavailable(str(exc)) from exc
