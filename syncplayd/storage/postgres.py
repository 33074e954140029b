"""The PostgreSQL engine: psycopg 3's *sync* API with a connection pool.

psycopg's async API needs asyncio and does not run under trio, so each repository
method is one sync transaction run in a worker thread by ``trio.to_thread.run_sync``
under a ``CapacityLimiter`` as large as the pool: a thread never waits for a
connection that the limiter did not promise it. This is Synapse's
``runInteraction`` shape.

Concurrency rests on PostgreSQL's row locks in READ COMMITTED: a join locks its
room row (``FOR UPDATE``) before counting participants, and conditional UPDATEs
(consuming an invitation) re-check their condition against the row that a
concurrent winner left behind.

The limiter never admits more threads than the pool holds connections, so a thread
that waits for a connection is only ever waiting for a new one to be established.
Once the database has failed (a lost connection, a failed connect), that wait is
cut to a second so that callers get :class:`StorageUnavailable` quickly instead of
hanging for the whole connect timeout; the first transaction that succeeds restores
the patient wait.

Outages and restarts of the server (tests/reliability/test_database_faults.py):

* A connection the server dropped while it sat idle in the pool (``pg_terminate_backend``,
  a server restart) is recognised when it is taken out, without a round trip for the
  healthy ones (:func:`_still_connected`), and replaced; so killed connections cost
  no request an error when the server is still up.
* The pool reconnects in the background with psycopg's backoff, which doubles without
  bound; each reconnection attempt is given up after ``RECONNECT_TIMEOUT_SECONDS`` and
  the next request starts a fresh one, so a server that comes back is found within
  seconds however long it was away.
* Each connection attempt is bounded by libpq's ``connect_timeout`` (unless the URL
  sets its own): an unreachable host does not hold a pool worker for minutes.

Worker threads are not cancellable: a cancelled caller waits for its statement to
finish (milliseconds in normal operation; the waits above bound the rest).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar, TypeVarTuple
from uuid import UUID

import psycopg
import psycopg.errors
import trio
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

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

CONNECT_TIMEOUT_SECONDS = 10.0
UNHEALTHY_WAIT_SECONDS = 1.0
#: A background reconnection attempt (psycopg doubles its delay: 1, 2, 4 s...) is given
#: up after this; the next request that needs a connection starts a new one at once.
RECONNECT_TIMEOUT_SECONDS = 5.0


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    # The shared queries use "?" and contain no other "?" or "%".
    return sql.replace("?", "%s")


class PostgresTx:
    """The PostgreSQL side of :class:`~._sql.Tx`."""

    for_update = " FOR UPDATE"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        # A fresh (client-side, cheap) cursor per statement: a query may keep one
        # result while it runs the next statement.
        cursor = self._conn.cursor(row_factory=dict_row)
        return cursor.execute(_placeholders(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def id(self, value: UUID) -> object:
        return value

    def ts(self, value: datetime) -> object:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def json(self, value: dict[str, Any]) -> object:
        return Jsonb(value)

    def read_id(self, value: Any) -> UUID:
        return UUID(str(value)) if not isinstance(value, UUID) else value

    def read_ts(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]  # timestamptz: aware, in UTC

    def read_json(self, value: Any) -> dict[str, Any]:
        return value  # type: ignore[no-any-return]  # jsonb arrives decoded


def translate_error(exc: psycopg.Error) -> StorageError:
    """Map a driver error onto the repository's errors."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        if exc.diag.constraint_name == "invitations_code_key":
            return DuplicateCode(str(exc))
        return StorageError(str(exc))
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return RoomNotFound(str(exc))
    # OperationalError covers lost connections, server shutdown and pool timeouts;
    # InterfaceError a connection that is already closed. A read-only transaction is
    # a server that cannot take writes for now (a standby, during a failover): an
    # outage to wait out, not a bad request whose write-behind data could be dropped.
    if isinstance(
        exc,
        psycopg.OperationalError | psycopg.InterfaceError | psycopg.errors.ReadOnlySqlTransaction,
    ):
        return StorageUnavailable(str(exc))
    return StorageError(str(exc))


def _configure(conn: psycopg.Connection[Any]) -> None:
    # timestamptz values come back in the session's zone: make that UTC everywhere.
    conn.execute("SET TIME ZONE 'UTC'")


def _still_connected(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection taken from the pool still works.

    An idle autocommit connection receives nothing unprompted (syncplayd never
    LISTENs), so a readable socket means the server spoke or hung up while it sat in
    the pool: a FATAL from ``pg_terminate_backend`` or a shutdown, or EOF. Only then
    is a round trip spent to find out; a healthy connection costs one ``poll``.
    """
    if conn.closed:
        return False
    try:
        poller = select.poll()  # not select(): descriptors above 1024 are common here
        poller.register(conn.fileno(), select.POLLIN)
        if not poller.poll(0):
            return True
        conn.execute("")  # reads what arrived; raises if it was the end of the session
    except (psycopg.Error, OSError):
        return False
    return True


class PostgresRepository(SqlRepository):
    """A :class:`~syncplayd.storage.base.Repository` on a PostgreSQL database.

    Use :meth:`open`; the constructor takes an opened pool.
    """

    def __init__(
        self,
        pool: ConnectionPool[psycopg.Connection[Any]],
        pool_size: int,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self._pool = pool
        self._limiter = trio.CapacityLimiter(pool_size)
        self._connect_timeout = connect_timeout
        # Written by worker threads; a plain bool is safe to share under the GIL.
        self._healthy = True

    @classmethod
    async def open(
        cls,
        conninfo: str,
        *,
        pool_size: int = 10,
        auto_migrate: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> PostgresRepository:
        """Check (or migrate) the schema, then open a pool of up to ``pool_size``.

        Raises:
            SchemaTooNew: a newer syncplayd migrated this database.
            StorageError: the schema is behind and ``auto_migrate`` is false.
            StorageUnavailable: the server cannot be reached.
        """
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")

        def setup() -> PostgresRepository:
            # One direct connection first: it reports the server's own reason
            # (unknown database, authentication) where a pool would only time out.
            with psycopg.connect(
                conninfo, autocommit=True, connect_timeout=max(1, round(connect_timeout))
            ) as conn:
                migrations.prepare(conn, "postgres", auto_migrate=auto_migrate)
            kwargs: dict[str, Any] = {"autocommit": True}
            if "connect_timeout" not in conninfo_to_dict(conninfo):
                kwargs["connect_timeout"] = max(1, round(connect_timeout))
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs=kwargs,
                configure=_configure,
                timeout=connect_timeout,
                reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
                name="syncplayd",
                open=False,
            )
            try:
                pool.open(wait=True, timeout=connect_timeout)
            except BaseException:
                pool.close()
                raise
            return cls(pool, pool_size, connect_timeout)

        try:
            return await trio.to_thread.run_sync(setup)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc

    def _checkout(self) -> psycopg.Connection[Any]:
        """A working connection from the pool (in a worker thread).

        Raises:
            PoolTimeout: none within the wait (see the module docs).
        """
        wait = self._connect_timeout if self._healthy else UNHEALTHY_WAIT_SECONDS
        deadline = time.monotonic() + wait
        while True:
            # getconn() refuses a wait <= 0 even when a connection is ready.
            conn = self._pool.getconn(timeout=max(0.01, deadline - time.monotonic()))
            if _still_connected(conn):
                return conn
            # The server dropped it: the pool discards it and connects anew. Others may
            # be dead too, and the server may be down: wait no longer than unhealthy.
            self._pool.putconn(conn)
            self._healthy = False
            deadline = min(deadline, time.monotonic() + UNHEALTHY_WAIT_SECONDS)
            if time.monotonic() >= deadline:
                raise PoolTimeout(f"no working connection within {wait:.1f} s")

    def _run(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        try:
            conn = self._checkout()
            try:
                with conn.transaction():
                    result = fn(PostgresTx(conn), *args)
            finally:
                self._pool.putconn(conn)  # a broken one is discarded and replaced
        except psycopg.OperationalError as exc:  # includes the pool's timeout
            self._healthy = False
            raise translate_error(exc) from exc
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        self._healthy = True
        return result

    async def _write(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        return await trio.to_thread.run_sync(lambda: self._run(fn, *args), limiter=self._limiter)

    async def _write_then_read(
        self, write: Callable[[Tx], T], read: Callable[[Tx], U]
    ) -> tuple[T, U]:
        def transactions() -> tuple[T, U]:
            return self._run(write), self._run(read)

        return await trio.to_thread.run_sync(transactions, limiter=self._limiter)

    async def _read(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        # Same path: PostgreSQL's MVCC gives reads their snapshot without help.
        return await trio.to_thread.run_sync(lambda: self._run(fn, *args), limiter=self._limiter)

    async def aclose(self) -> None:
        if self._pool.closed:
            return
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._pool.close)
