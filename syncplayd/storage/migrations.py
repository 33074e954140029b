"""The schema migration runner: numbered SQL files per dialect, recorded in a table.

Theory of operation: ``migrations/<dialect>/NNNN_name.up.sql`` (and an optional
``NNNN_name.down.sql``) are applied in version order. Each file runs in its own
transaction together with the row that records it in ``schema_migrations``, so a
failed file leaves the database at the previous version. The runner takes the
database's write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock)
and re-reads the applied versions under it, so two daemons starting at once do
not apply a file twice.

The functions here are synchronous and take an open DB-API connection that is not
inside a transaction: the repositories call them from their worker threads.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, TypeAlias

import psycopg
from psycopg.rows import tuple_row

from syncplayd.clocks import utc_now
from syncplayd.storage.errors import SchemaTooNew, StorageError

SCHEMA_VERSION = 8
"""The highest schema version this code knows.

Changelog:

* 1 -- initial schema: rooms, participants, chat_messages, events, invitations.
* 2 -- rooms.playback_control: who may play, pause and seek (everyone / moderators).
* 3 -- moderation: rooms.moderators_manage_moderators, and room_restrictions (bans and
  mutes, kept when the user leaves the room).
* 4 -- the play queue: queue_items, and on rooms current_item_id, queue_repeat,
  queue_shuffle, wait_for_slow_members and start_when_ready. Every existing room gets a
  one-item queue of its content.
* 5 -- rooms.syncplay_password_hash: an argon2id hash of the MD5 hex of the room's
  password, which Syncplay desktop clients send instead of the password. Rooms with a
  password from before have none (their owner must set the password again).
* 6 -- the cluster: nodes (the registry of running nodes, with heartbeats) and
  room_owners (which node runs each live room, a mirror of the advisory locks that decide
  it). SQLite gets the same tables, although multi-node mode refuses it.
* 7 -- nodes.syncplay_bridge: where the other nodes reach the node's Syncplay listener
  (``HOST:PORT``, an IPv6 host in brackets), to forward a Syncplay client whose room runs
  there; NULL when the node runs no listener (and in rows from before, until their node
  registers again).
* 8 -- secret_attempts: failed-attempt budgets (room passwords, invitation codes) per user
  and per client address, counted in fixed windows, which the nodes of multi-node mode
  share instead of each counting in its own memory. SQLite gets the same table, although
  multi-node mode refuses it.
"""

Dialect: TypeAlias = Literal["sqlite", "postgres"]
Connection: TypeAlias = "sqlite3.Connection | psycopg.Connection[Any]"

_FILE_RE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")
# Arbitrary but fixed: every syncplayd process agrees on it.
_PG_LOCK_KEY = 0x5F5C_0001


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration of one dialect."""

    version: int
    name: str
    up_sql: str
    down_sql: str | None


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """A migration as the database sees it: ``applied_at`` is ``None`` while pending.

    ``known`` is ``False`` for a version applied by a newer syncplayd.
    """

    version: int
    name: str
    applied_at: datetime | None
    known: bool = True

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def _folder(dialect: Dialect) -> Traversable:
    # Installed wheel: pyproject force-includes the top-level migrations/ here.
    packaged = resources.files("syncplayd") / "_data" / "migrations" / dialect
    if packaged.is_dir():
        return packaged
    # Editable or source checkout: the repository's top-level folder.
    return Path(__file__).resolve().parents[2] / "migrations" / dialect


def available(dialect: Dialect) -> list[Migration]:
    """Return the dialect's migrations, in version order.

    Raises:
        StorageError: the folder is missing, a version is duplicated or has no up file.
    """
    folder = _folder(dialect)
    if not folder.is_dir():
        raise StorageError(f"no migrations folder for {dialect!r} at {folder}")
    files: dict[int, dict[str, tuple[str, str]]] = {}
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match is None:
            continue
        version = int(match["version"])
        by_direction = files.setdefault(version, {})
        if match["direction"] in by_direction or any(
            name != match["name"] for name, _ in by_direction.values()
        ):
            raise StorageError(f"migration {version:04d} of {dialect} is defined twice")
        by_direction[match["direction"]] = (match["name"], entry.read_text(encoding="utf-8"))
    migrations = []
    for version in sorted(files):
        if "up" not in files[version]:
            raise StorageError(f"migration {version:04d} of {dialect} has no up file")
        name, up_sql = files[version]["up"]
        down = files[version].get("down")
        migrations.append(Migration(version, name, up_sql, down[1] if down else None))
    return migrations


# -- dialect specifics --------------------------------------------------------------
def _split_sqlite(script: str) -> list[str]:
    # sqlite3 executes one statement per call, and executescript() would COMMIT our
    # transaction; complete_statement() knows about quotes, comments and triggers.
    statements, start = [], 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statements.append(script[start : index + 1])
            start = index + 1
    if script[start:].strip():
        statements.append(script[start:])
    return statements


@contextmanager
def _transaction(conn: Connection, *, write: bool) -> Iterator[None]:
    # Writers take the database-wide migration lock before looking at what is
    # applied; readers only want a consistent snapshot.
    if isinstance(conn, sqlite3.Connection):
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    else:
        with conn.transaction():
            if write:
                conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            yield


def _execute(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    # Plain tuples whatever row factory the caller's connection uses. The runner's
    # own statements are written with "?" and contain no other "?".
    if isinstance(conn, sqlite3.Connection):
        cursor = conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()
    pg_cursor = conn.cursor(row_factory=tuple_row).execute(sql.replace("?", "%s"), params)
    return pg_cursor.fetchall() if pg_cursor.description is not None else []


def _execute_script(conn: Connection, script: str) -> None:
    if isinstance(conn, sqlite3.Connection):
        for statement in _split_sqlite(script):
            conn.execute(statement)
    else:
        # Without parameters psycopg sends the whole file as one simple query.
        conn.execute(script)


def _table_exists(conn: Connection) -> bool:
    if isinstance(conn, sqlite3.Connection):
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    else:
        sql = (
            "SELECT 1 FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename = 'schema_migrations'"
        )
    return bool(_execute(conn, sql))


def _ensure_table(conn: Connection) -> None:
    sqlite = isinstance(conn, sqlite3.Connection)
    applied_at = "TEXT NOT NULL" if sqlite else "timestamptz NOT NULL"
    _execute(
        conn,
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        f"version integer PRIMARY KEY, name text NOT NULL, applied_at {applied_at})",
    )


def _applied(conn: Connection) -> dict[int, tuple[str, datetime]]:
    if not _table_exists(conn):
        return {}
    rows = _execute(conn, "SELECT version, name, applied_at FROM schema_migrations")
    return {
        int(version): (
            str(name),
            datetime.fromisoformat(applied_at) if isinstance(applied_at, str) else applied_at,
        )
        for version, name, applied_at in rows
    }


def _now_param(conn: Connection) -> Any:
    now = utc_now()
    if isinstance(conn, sqlite3.Connection):
        return now.isoformat(timespec="microseconds")
    return now


# -- public API ------------------------------------------------------------------------
def current_version(conn: Connection, dialect: Dialect) -> int:
    """Return the highest applied version (0 for an empty database)."""
    del dialect  # the connection's type tells; kept for a uniform call shape
    with _transaction(conn, write=False):
        return max(_applied(conn), default=0)


def check_not_newer(conn: Connection, dialect: Dialect) -> int:
    """Return the database's version.

    Raises:
        SchemaTooNew: a newer syncplayd migrated this database.
    """
    version = current_version(conn, dialect)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the database schema is at version {version}, but this syncplayd only knows "
            f"versions up to {SCHEMA_VERSION}; upgrade syncplayd"
        )
    return version


def prepare(conn: Connection, dialect: Dialect, *, auto_migrate: bool) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION` (or insist that it is there).

    Raises:
        SchemaTooNew: a newer syncplayd migrated this database.
        StorageError: the schema is behind and ``auto_migrate`` is false.
    """
    version = check_not_newer(conn, dialect)
    if version == SCHEMA_VERSION:
        return
    if not auto_migrate:
        raise StorageError(
            f"the database schema is at version {version} but this syncplayd needs "
            f"version {SCHEMA_VERSION}; run `syncplayd migrate up` (or enable automatic "
            "migrations)"
        )
    migrate_up(conn, dialect)


def status(conn: Connection, dialect: Dialect) -> list[MigrationStatus]:
    """Return every known migration (applied or pending) and any unknown applied one."""
    with _transaction(conn, write=False):
        applied = _applied(conn)
    known = {m.version: m for m in available(dialect)}
    result = [
        MigrationStatus(m.version, m.name, applied[m.version][1] if m.version in applied else None)
        for m in known.values()
    ]
    result += [
        MigrationStatus(version, name, at, known=False)
        for version, (name, at) in applied.items()
        if version not in known
    ]
    return sorted(result, key=lambda s: s.version)


def migrate_up(conn: Connection, dialect: Dialect, target: int | None = None) -> list[Migration]:
    """Apply pending migrations up to ``target`` (default: all); return those applied.

    Raises:
        SchemaTooNew: the database is newer than this code.
        ValueError: ``target`` is not a known version.
    """
    migrations = available(dialect)
    if target is not None and target not in {m.version for m in migrations}:
        raise ValueError(f"unknown schema version {target}")
    check_not_newer(conn, dialect)
    done: list[Migration] = []
    for migration in migrations:
        if target is not None and migration.version > target:
            break
        with _transaction(conn, write=True):
            _ensure_table(conn)
            if migration.version in _applied(conn):
                continue  # already there, or another process got here first
            _execute_script(conn, migration.up_sql)
            _execute(
                conn,
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _now_param(conn)),
            )
        done.append(migration)
    return done


def migrate_down(conn: Connection, dialect: Dialect, steps: int = 1) -> list[Migration]:
    """Revert the ``steps`` newest applied migrations; return those reverted.

    Raises:
        SchemaTooNew: the newest applied migration is unknown to this code.
        StorageError: a migration to revert has no down file.
        ValueError: ``steps`` is negative.
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    check_not_newer(conn, dialect)
    known = {m.version: m for m in available(dialect)}
    done: list[Migration] = []
    for _ in range(steps):
        with _transaction(conn, write=True):
            applied = _applied(conn)
            if not applied:
                break
            migration = known.get(max(applied))
            if migration is None:
                raise StorageError(f"migration {max(applied):04d} is applied but unknown")
            if migration.down_sql is None:
                raise StorageError(f"migration {migration.version:04d} cannot be reverted")
            _execute_script(conn, migration.down_sql)
            _execute(conn, "DELETE FROM schema_migrations WHERE version = ?", (migration.version,))
        done.append(migration)
    return done
