"""The SQLite engine: the embedded default, one database file in WAL mode.

SQLite allows one writer at a time, so every write goes through one dedicated
connection behind a ``CapacityLimiter(1)``, and each repository method runs a whole
``BEGIN IMMEDIATE`` transaction in one worker-thread hop (a hop costs ~100-180 us:
one per operation, never one per statement). Reads use a few other connections,
which WAL lets run beside the writer, each on a consistent snapshot. Serialising
the writers is also what keeps capacity checks honest: the count and the insert
happen in the same write transaction, and ``BEGIN IMMEDIATE`` extends that to
other processes (the CLI) writing to the same file.

Values are stored as the migration describes: UUIDs as text, timestamps as
fixed-format UTC ISO-8601 text (so that text order is time order), booleans as 0/1.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple
from uuid import UUID

import trio

from syncplayd.storage import migrations
from syncplayd.storage._sql import Cursor, Tx
from syncplayd.storage._sqlrepo import SqlRepository
from syncplayd.storage.errors import (
    DuplicateCode,
    RoomNotFound,
    StorageError,
    StorageUnavailable,
)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

BUSY_TIMEOUT_SECONDS = 5.0


class SqliteTx:
    """The SQLite side of :class:`~._sql.Tx`."""

    for_update = ""  # BEGIN IMMEDIATE already holds the database's write lock

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._conn.executemany(sql, rows)

    def id(self, value: UUID) -> object:
        return str(value)

    def ts(self, value: datetime) -> object:
        # Naive datetimes are taken as UTC, as the PostgreSQL sessions (set to UTC) do.
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return aware.astimezone(UTC).isoformat(timespec="microseconds")

    def json(self, value: dict[str, Any]) -> object:
        return json.dumps(value, separators=(",", ":"))

    def read_id(self, value: Any) -> UUID:
        return UUID(value)

    def read_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def read_json(self, value: Any) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(value)
        return loaded


def translate_error(exc: sqlite3.Error) -> StorageError:
    """Map a driver error onto the repository's errors."""
    name = getattr(exc, "sqlite_errorname", "")
    if isinstance(exc, sqlite3.IntegrityError):
        if name == "SQLITE_CONSTRAINT_UNIQUE" and "invitations.code" in str(exc):
            return DuplicateCode(str(exc))
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return RoomNotFound(str(exc))
        return StorageError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):  # locked, I/O error, disk full, ...
        return StorageUnavailable(str(exc))
    return StorageError(str(exc))


def connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open a connection configured as every syncplayd connection must be.

    Autocommit mode (``isolation_level=None``) makes transactions explicit, so that
    a write can take the write lock with ``BEGIN IMMEDIATE`` before it reads.
    """
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
        else:
            _use_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (persistent: only a brand-new file needs the switch).

    Switching needs an exclusive lock, and SQLite answers "database is locked"
    at once instead of calling the busy handler when several connections open
    a new file together (several daemons, or migration runners, starting at
    once). So the switch is retried for up to the busy timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # in a worker thread: lock contention, not the event loop


class SqliteRepository(SqlRepository):
    """A :class:`~syncplayd.storage.base.Repository` on one SQLite file.

    Use :meth:`open`; the constructor takes connections made by :func:`connect`.
    """

    def __init__(self, writer: sqlite3.Connection, readers: Sequence[sqlite3.Connection]) -> None:
        if not readers:
            raise ValueError("at least one reader connection is needed")
        self._writer = writer
        # The read limiter never lets more threads in than there are connections,
        # so a thread always finds one here (list pop/append are atomic).
        self._idle_readers = list(readers)
        self._reader_count = len(readers)
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(len(readers))
        self._closed = False

    @classmethod
    async def open(
        cls, path: str | Path, *, readers: int = 4, auto_migrate: bool = True
    ) -> SqliteRepository:
        """Open (creating the file and its directory if needed) and check the schema.

        Raises:
            SchemaTooNew: a newer syncplayd migrated this database.
            StorageError: the schema is behind and ``auto_migrate`` is false.
            StorageUnavailable: the file cannot be opened.
        """

        def setup() -> SqliteRepository:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            writer = connect(path)
            opened = [writer]
            try:
                migrations.prepare(writer, "sqlite", auto_migrate=auto_migrate)
                for _ in range(readers):
                    opened.append(connect(path, read_only=True))
            except BaseException:
                for conn in opened:
                    conn.close()
                raise
            return cls(writer, opened[1:])

        try:
            return await trio.to_thread.run_sync(setup)
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot create {path}: {exc}") from exc

    async def _write(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        def transaction() -> T:
            self._check_open()
            return self._run(self._writer, "BEGIN IMMEDIATE", fn, *args)

        return await trio.to_thread.run_sync(transaction, limiter=self._write_limiter)

    async def _read(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        def transaction() -> T:
            self._check_open()
            conn = self._idle_readers.pop()
            try:
                return self._run(conn, "BEGIN", fn, *args)
            finally:
                self._idle_readers.append(conn)

        return await trio.to_thread.run_sync(transaction, limiter=self._read_limiter)

    @staticmethod
    def _run(conn: sqlite3.Connection, begin: str, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        try:
            conn.execute(begin)
            try:
                result = fn(SqliteTx(conn), *args)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # some errors already rolled back
                    conn.rollback()
                raise
        except sqlite3.Error as exc:
            raise translate_error(exc) from exc
        return result

    def _check_open(self) -> None:
        if self._closed:
            raise StorageUnavailable("the repository is closed")

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True

        # Each close queues behind the operations already holding a connection;
        # shielded, so that a cancelled shutdown still releases every connection.
        def close_writer() -> None:
            try:
                self._writer.execute("PRAGMA optimize")  # cheap; keeps query plans good
            except sqlite3.Error:
                pass
            finally:
                self._writer.close()

        def close_reader() -> None:
            self._idle_readers.pop().close()

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(close_writer, limiter=self._write_limiter)
            for _ in range(self._reader_count):
                await trio.to_thread.run_sync(close_reader, limiter=self._read_limiter)
