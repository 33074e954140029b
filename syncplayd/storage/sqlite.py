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

A file that cannot be written (read-only file, folder or file system, a full disk)
must give a clear error, never a hang (tests/reliability/test_database_faults.py):

* at open, a write probe (:func:`probe_write`) refuses such a file, so the daemon
  exits with one line naming the file and the reason instead of starting and then
  failing every write (SQLite opens a read-only file without complaint);
* at run time, such errors become :class:`StorageUnavailable` (clients get
  ``unavailable``, REST ``503``) with what the file system says (:func:`diagnose`),
  and :meth:`SqliteRepository.ping` (``/readyz``) reports a database that reads but
  cannot be written until a write succeeds again. SQLite fails such writes at once;
  only lock waits use the busy timeout.
"""

from __future__ import annotations

import json
import os
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
U = TypeVar("U")
Ts = TypeVarTuple("Ts")

BUSY_TIMEOUT_SECONDS = 5.0
#: Below this much free space a failed write is blamed on the disk in messages.
LOW_SPACE_BYTES = 1024 * 1024
#: Driver errors that are about the file or the file system rather than the SQL.
_FILE_ERRORS = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM")


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


def diagnose(path: str | Path) -> str:
    """Why a database file may not be writable, as the file system tells (for messages).

    Empty when nothing looks wrong. Permission checks use ``os.access``, so they
    are right for root too (root may write a mode 0444 file).
    """
    path = Path(path)
    folder = path.parent
    try:
        stats = os.statvfs(folder)
    except OSError as exc:
        return f"{folder}: {exc.strerror}"
    if stats.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only file system"
    found = []
    free = stats.f_bavail * stats.f_frsize
    if free < LOW_SPACE_BYTES:
        found.append(f"the disk is full: {free // 1024} KiB free under {folder}")
    for target, what in ((folder, "folder"), (path, "file")):
        # os.path.exists, not Path.exists: a folder we may not search must not raise here.
        if os.path.exists(target) and not os.access(target, os.W_OK):
            found.append(f"the {what} {target} is not writable for uid {os.geteuid()}")
    return "; ".join(found)


def translate_error(exc: sqlite3.Error, path: str | Path | None = None) -> StorageError:
    """Map a driver error onto the repository's errors.

    With ``path``, an error about the file (full, read-only, cannot open, I/O) says
    what the file system reports about it, so the log names the actual problem.
    """
    name = getattr(exc, "sqlite_errorname", "") or ""
    if isinstance(exc, sqlite3.IntegrityError):
        if name == "SQLITE_CONSTRAINT_UNIQUE" and "invitations.code" in str(exc):
            return DuplicateCode(str(exc))
        if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
            return RoomNotFound(str(exc))
        return StorageError(str(exc))
    if isinstance(exc, sqlite3.OperationalError):  # locked, I/O error, disk full, ...
        message = str(exc)
        if path is not None and name.startswith(_FILE_ERRORS):
            found = diagnose(path)
            if not found and name == "SQLITE_FULL":
                found = "the file system has room: a size limit (max_page_count) was reached"
            message = f"{message} ({found})" if found else message
        return StorageUnavailable(message)
    return StorageError(str(exc))


def _no_room(conn: sqlite3.Connection, path: str | Path | None) -> str:
    """Why a write that needs a new page would fail now (empty: it would not)."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    if pages >= int(conn.execute("PRAGMA max_page_count").fetchone()[0]):
        return "the database reached its page limit (max_page_count)"
    if path is not None:
        folder = Path(path).parent
        try:
            stats = os.statvfs(folder)
        except OSError as exc:
            return f"{folder}: {exc.strerror}"
        free = stats.f_bavail * stats.f_frsize
        if free < LOW_SPACE_BYTES:
            return f"the disk is full: {free // 1024} KiB free under {folder}"
    return ""


def probe_write(conn: sqlite3.Connection) -> None:
    """Commit a write that changes nothing, to learn whether the file can be written.

    SQLite opens a read-only file (or one in a read-only folder) without complaint
    and fails only at the first write; reads work on a full disk. Rewriting the
    header's ``user_version`` (unused by syncplayd) with its own value is a real
    write through the WAL.

    Raises:
        sqlite3.Error: the write failed (read-only, disk full, I/O error...).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


#: The database's folder and files hold invitation codes and private chat: only the
#: daemon's user may read them (the shipped unit also sets UMask=0027).
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def create_private(path: str | Path) -> None:
    """Create the database file (0600) and its folder (0700) if missing, whatever the umask.

    SQLite would create the file 0644 less the umask; it creates the ``-wal`` and
    ``-shm`` files with the database file's own mode, so they are private too.
    What exists already keeps its mode (the operator's choice).
    """
    file = Path(path)
    if not file.parent.exists():
        file.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        file.parent.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is less the umask
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # a read-only folder, say: SQLite's open then fails and says why (diagnose)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # as above: the umask can only have removed bits
    finally:
        os.close(fd)


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

    def __init__(
        self,
        writer: sqlite3.Connection,
        readers: Sequence[sqlite3.Connection],
        *,
        path: str | Path | None = None,
    ) -> None:
        if not readers:
            raise ValueError("at least one reader connection is needed")
        self._path = path
        # Why the latest write failed (StorageUnavailable: full, read-only, locked...);
        # None once one worked. ping() probes a write while it is set.
        self._write_failure: str | None = None
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
            StorageUnavailable: the file cannot be opened or written (read-only file,
                folder or file system, a full disk); the message names the file.
        """

        def setup() -> SqliteRepository:
            create_private(path)
            writer = connect(path)
            opened = [writer]
            try:
                migrations.prepare(writer, "sqlite", auto_migrate=auto_migrate)
                probe_write(writer)
                for _ in range(readers):
                    opened.append(connect(path, read_only=True))
            except BaseException:
                for conn in opened:
                    conn.close()
                raise
            return cls(writer, opened[1:], path=path)

        try:
            return await trio.to_thread.run_sync(setup)
        except sqlite3.Error as exc:
            error = translate_error(exc, path)
            raise type(error)(f"cannot use the SQLite database {path}: {error}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot create {path}: {exc}") from exc

    async def _write(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        def transaction() -> T:
            self._check_open()
            return self._run(self._writer, "BEGIN IMMEDIATE", fn, *args, path=self._path)

        return await self._on_writer(transaction)

    async def _write_then_read(
        self, write: Callable[[Tx], T], read: Callable[[Tx], U]
    ) -> tuple[T, U]:
        def transactions() -> tuple[T, U]:
            self._check_open()
            written = self._run(self._writer, "BEGIN IMMEDIATE", write, path=self._path)
            # On the writer's connection, which this call holds: a reader's would be as good,
            # since WAL shows every reader what has committed, but would need the other
            # limiter too.
            return written, self._run(self._writer, "BEGIN", read, path=self._path)

        return await self._on_writer(transactions)

    async def _on_writer(self, job: Callable[[], T]) -> T:
        """Run ``job`` in a worker thread holding the writer's connection; a write that fails
        for want of a usable database is remembered for :meth:`ping`."""
        try:
            result = await trio.to_thread.run_sync(job, limiter=self._write_limiter)
        except StorageUnavailable as exc:
            self._write_failure = str(exc)
            raise
        self._write_failure = None
        return result

    async def _read(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        def transaction() -> T:
            self._check_open()
            conn = self._idle_readers.pop()
            try:
                return self._run(conn, "BEGIN", fn, *args, path=self._path)
            finally:
                self._idle_readers.append(conn)

        return await trio.to_thread.run_sync(transaction, limiter=self._read_limiter)

    @staticmethod
    def _run(
        conn: sqlite3.Connection,
        begin: str,
        fn: Callable[[Tx, *Ts], T],
        *args: *Ts,
        path: str | Path | None = None,
    ) -> T:
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
            raise translate_error(exc, path) from exc
        return result

    async def ping(self) -> None:
        """Reads work; and, once a write has failed, a write works again.

        A full disk or a file turned read-only still reads: without the write check
        ``/readyz`` would call ready a daemon that can store nothing. The probe runs
        only while writes are failing, and clears the failure once it goes through.
        """
        await super().ping()
        if self._write_failure is None:
            return

        def probe() -> None:
            self._check_open()
            try:
                probe_write(self._writer)
            except sqlite3.Error as exc:
                raise translate_error(exc, self._path) from exc
            # The probe rewrites a page that exists: it passes on a full disk as long
            # as the WAL has room, while a write that needs a new page still fails.
            no_room = _no_room(self._writer, self._path)
            if no_room:
                raise StorageUnavailable(f"database or disk is full ({no_room})")

        try:
            await trio.to_thread.run_sync(probe, limiter=self._write_limiter)
        except StorageUnavailable as exc:
            self._write_failure = str(exc)
            raise StorageUnavailable(f"the database cannot be written: {exc}") from exc
        self._write_failure = None

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
