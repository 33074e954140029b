"""The migration runner on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import trio

from syncplayd.core.queue import Queue
from syncplayd.storage import (
    SCHEMA_VERSION,
    Room,
    SchemaTooNew,
    StorageError,
    migrations,
    open_repository,
    parse_url,
    run_migrations,
)
from syncplayd.storage import sqlite as sqlite_engine
from syncplayd.storage.migrations import Connection, Dialect
from tests.conftest import fresh_database
from tests.storage.factories import T0

Schema = dict[str, set[tuple[str, bool]]]  # table -> {(column, nullable)}
QUEUE_ROOM_COLUMNS = {
    "current_item_id", "queue_repeat", "queue_shuffle", "wait_for_slow_members",
    "start_when_ready",
}  # fmt: skip


@contextmanager
def connect(url: str) -> Iterator[tuple[Connection, Dialect]]:
    """A raw DB-API connection to the database of a URL, as the CLI would open."""
    engine, where = parse_url(url)
    if engine == "sqlite":
        with closing(sqlite_engine.connect(where)) as conn:
            yield conn, "sqlite"
    else:
        with psycopg.connect(where, autocommit=True) as pg:
            yield pg, "postgres"


def schema_of(conn: Connection) -> Schema:
    """Tables and their columns (primary-key columns count as not nullable)."""
    if isinstance(conn, sqlite3.Connection):
        tables = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return {
            t[0]: {(c[1], not (c[3] or c[5])) for c in conn.execute(f"PRAGMA table_info({t[0]})")}
            for t in tables
        }
    rows = conn.execute(
        "SELECT table_name, column_name, is_nullable = 'YES' FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ).fetchall()
    schema: Schema = {}
    for table, column, nullable in rows:
        schema.setdefault(table, set()).add((column, nullable))
    return schema


def indexes_of(conn: Connection) -> set[str]:
    """Names of the explicitly created indexes."""
    if isinstance(conn, sqlite3.Connection):
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
    else:
        sql = (
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
        )
    return {row[0] for row in conn.execute(sql).fetchall()}


def run(conn: Connection, sql: str, *params: object) -> list[tuple[object, ...]]:
    return migrations._execute(conn, sql, params)


def insert_room(conn: Connection, room: str, at: str) -> None:
    """A public room named ``Kept`` with the columns every schema version has."""
    run(
        conn,
        "INSERT INTO rooms (id, name, owner_id, content_type, content_id, is_public,"
        " max_participants, created_at, updated_at)"
        " VALUES (?, 'Kept', ?, 'movie', 'm-1', ?, 5, ?, ?)",
        room, str(uuid.uuid4()), True, at, at,
    )  # fmt: skip


def test_both_dialects_know_the_same_migrations() -> None:
    sqlite_side, pg_side = migrations.available("sqlite"), migrations.available("postgres")
    assert [(m.version, m.name) for m in sqlite_side] == [(m.version, m.name) for m in pg_side]
    assert sqlite_side[-1].version == SCHEMA_VERSION
    assert all(m.down_sql for m in sqlite_side + pg_side)


def test_up_status_down_up(database_url: str) -> None:
    with connect(database_url) as (conn, dialect):
        assert migrations.current_version(conn, dialect) == 0
        assert [(s.version, s.applied) for s in migrations.status(conn, dialect)] == [
            (1, False),
            (2, False),
            (3, False),
            (4, False),
            (5, False),
            (6, False),
            (7, False),
            (8, False),
        ]

        applied = migrations.migrate_up(conn, dialect)
        assert [m.version for m in applied] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert migrations.current_version(conn, dialect) == SCHEMA_VERSION == 8
        first, second, third, fourth, fifth, sixth, seventh, eighth = migrations.status(
            conn, dialect
        )
        assert (first.version, first.name, first.applied, first.known) == (1, "initial", True, True)
        assert (second.version, second.name, second.applied) == (2, "playback_control", True)
        assert (third.version, third.name, third.applied) == (3, "moderation", True)
        assert (fourth.version, fourth.name, fourth.applied) == (4, "queue", True)
        assert (fifth.version, fifth.name, fifth.applied) == (5, "syncplay_password", True)
        assert (sixth.version, sixth.name, sixth.applied) == (6, "cluster", True)
        assert (seventh.version, seventh.name, seventh.applied) == (7, "node_bridge", True)
        assert (eighth.version, eighth.name, eighth.applied) == (8, "secret_attempts", True)
        assert migrations.migrate_up(conn, dialect) == []
        assert set(schema_of(conn)) == {
            "rooms", "participants", "chat_messages", "events", "invitations",
            "room_restrictions", "queue_items", "nodes", "room_owners", "secret_attempts",
            "schema_migrations",
        }  # fmt: skip
        assert schema_of(conn)["secret_attempts"] == {
            ("scope", False), ("key", False), ("window_start", False), ("count", False),
        }  # fmt: skip
        assert "secret_attempts_window_idx" in indexes_of(conn)
        assert schema_of(conn)["nodes"] == {
            ("node_id", False), ("url", False), ("pid", False), ("started_at", False),
            ("heartbeat_at", False), ("syncplay_bridge", True),
        }  # fmt: skip
        assert schema_of(conn)["room_owners"] == {
            ("room_id", False), ("node_id", False), ("since", False),
        }  # fmt: skip
        assert "room_owners_node_idx" in indexes_of(conn)
        assert ("playback_control", False) in schema_of(conn)["rooms"]
        assert ("moderators_manage_moderators", False) in schema_of(conn)["rooms"]
        assert {
            ("current_item_id", True), ("queue_repeat", False), ("queue_shuffle", False),
            ("wait_for_slow_members", False), ("start_when_ready", False),
        } <= schema_of(conn)["rooms"]  # fmt: skip
        assert ("syncplay_password_hash", True) in schema_of(conn)["rooms"]
        assert "room_restrictions_expires_idx" in indexes_of(conn)
        assert "queue_items_room_ord_idx" in indexes_of(conn)

        assert migrations.migrate_down(conn, dialect, steps=0) == []
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [8]
        assert "secret_attempts" not in schema_of(conn)
        assert "secret_attempts_window_idx" not in indexes_of(conn)
        assert "syncplay_bridge" in {c for c, _ in schema_of(conn)["nodes"]}
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [7]
        assert "syncplay_bridge" not in {c for c, _ in schema_of(conn)["nodes"]}
        assert "room_owners" in schema_of(conn)
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [6]
        assert not {"nodes", "room_owners"} & set(schema_of(conn))
        assert "room_owners_node_idx" not in indexes_of(conn)
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [5]
        assert "syncplay_password_hash" not in {c for c, _ in schema_of(conn)["rooms"]}
        assert "queue_items" in schema_of(conn)
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [4]
        assert "queue_items" not in schema_of(conn)
        assert "queue_items_room_ord_idx" not in indexes_of(conn)
        assert {c for c, _ in schema_of(conn)["rooms"]}.isdisjoint(QUEUE_ROOM_COLUMNS)
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [3]
        assert "room_restrictions" not in schema_of(conn)
        assert "room_restrictions_expires_idx" not in indexes_of(conn)
        assert {c for c, _ in schema_of(conn)["rooms"]} >= {"playback_control"}
        assert "moderators_manage_moderators" not in {c for c, _ in schema_of(conn)["rooms"]}
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [2]
        assert ("playback_control", False) not in schema_of(conn)["rooms"]
        reverted = migrations.migrate_down(conn, dialect)
        assert [m.version for m in reverted] == [1]
        assert migrations.current_version(conn, dialect) == 0
        assert set(schema_of(conn)) == {"schema_migrations"}
        assert migrations.migrate_down(conn, dialect) == []

        assert [m.version for m in migrations.migrate_up(conn, dialect, target=1)] == [1]
        assert migrations.current_version(conn, dialect) == 1
        with pytest.raises(ValueError, match="unknown schema version"):
            migrations.migrate_up(conn, dialect, target=99)


@pytest.mark.postgres
def test_sqlite_and_postgres_schemas_match(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    schemas: list[Schema] = []
    indexes: list[set[str]] = []
    for backend in ("sqlite", "postgres"):
        with fresh_database(backend, request, tmp_path) as url, connect(url) as (conn, dialect):
            migrations.migrate_up(conn, dialect)
            schemas.append(schema_of(conn))
            indexes.append(indexes_of(conn))
    assert schemas[0] == schemas[1]
    assert indexes[0] == indexes[1]
    assert "rooms_created_at_idx" in indexes[0]


def test_a_newer_schema_is_refused(database_url: str) -> None:
    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect)
        insert = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"
        future = SCHEMA_VERSION + 1
        if isinstance(conn, sqlite3.Connection):
            conn.execute(insert, (future, "future", "2030-01-01T00:00:00.000000+00:00"))
        else:
            conn.execute(insert.replace("?", "%s"), (future, "future", "2030-01-01T00:00:00Z"))

        with pytest.raises(SchemaTooNew, match="upgrade syncplayd"):
            migrations.check_not_newer(conn, dialect)
        with pytest.raises(SchemaTooNew):
            migrations.migrate_up(conn, dialect)
        with pytest.raises(SchemaTooNew):
            migrations.migrate_down(conn, dialect)
        states = migrations.status(conn, dialect)
        assert [(s.version, s.known) for s in states] == [
            (1, True),
            (2, True),
            (3, True),
            (4, True),
            (5, True),
            (6, True),
            (7, True),
            (8, True),
            (future, False),
        ]

    for auto_migrate in (True, False):
        with pytest.raises(SchemaTooNew):
            trio.run(lambda: open_repository(database_url, auto_migrate=auto_migrate))  # noqa: B023
    lines = trio.run(lambda: run_migrations(database_url, "status"))
    assert lines[-1].endswith("applied by a newer syncplayd")


def test_auto_migrate_false_refuses_a_behind_schema(database_url: str) -> None:
    with pytest.raises(StorageError, match="syncplayd migrate up"):
        trio.run(lambda: open_repository(database_url, auto_migrate=False))
    with connect(database_url) as (conn, dialect):
        assert migrations.current_version(conn, dialect) == 0


def test_run_migrations_for_the_cli(database_url: str) -> None:
    def run(action: str, **kwargs: int) -> list[str]:
        return trio.run(lambda: run_migrations(database_url, action, **kwargs))  # type: ignore[arg-type]

    pending = [
        "0001_initial  pending",
        "0002_playback_control  pending",
        "0003_moderation  pending",
        "0004_queue  pending",
        "0005_syncplay_password  pending",
        "0006_cluster  pending",
        "0007_node_bridge  pending",
        "0008_secret_attempts  pending",
    ]
    assert run("status") == pending
    assert run("up") == [
        "applied 0001_initial",
        "applied 0002_playback_control",
        "applied 0003_moderation",
        "applied 0004_queue",
        "applied 0005_syncplay_password",
        "applied 0006_cluster",
        "applied 0007_node_bridge",
        "applied 0008_secret_attempts",
        "schema version 8 (this syncplayd: 8)",
    ]
    assert run("up") == ["schema version 8 (this syncplayd: 8)"]
    first, second, third, fourth, fifth, sixth, seventh, eighth = run("status")
    assert first.startswith("0001_initial  applied 20")
    assert second.startswith("0002_playback_control  applied 20")
    assert third.startswith("0003_moderation  applied 20")
    assert fourth.startswith("0004_queue  applied 20")
    assert fifth.startswith("0005_syncplay_password  applied 20")
    assert sixth.startswith("0006_cluster  applied 20")
    assert seventh.startswith("0007_node_bridge  applied 20")
    assert eighth.startswith("0008_secret_attempts  applied 20")
    assert run("down", steps=9) == [
        "reverted 0008_secret_attempts",
        "reverted 0007_node_bridge",
        "reverted 0006_cluster",
        "reverted 0005_syncplay_password",
        "reverted 0004_queue",
        "reverted 0003_moderation",
        "reverted 0002_playback_control",
        "reverted 0001_initial",
        "schema version 0 (this syncplayd: 8)",
    ]
    assert run("status") == pending
    with pytest.raises(ValueError, match="action"):
        run("sideways")


def test_status_and_down_do_not_create_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.sqlite3'}"
    assert trio.run(lambda: run_migrations(url, "status")) == [
        "0001_initial  pending",
        "0002_playback_control  pending",
        "0003_moderation  pending",
        "0004_queue  pending",
        "0005_syncplay_password  pending",
        "0006_cluster  pending",
        "0007_node_bridge  pending",
        "0008_secret_attempts  pending",
    ]
    assert trio.run(lambda: run_migrations(url, "down")) == ["schema version 0 (this syncplayd: 8)"]
    assert not (tmp_path / "missing.sqlite3").exists()
    assert trio.run(lambda: run_migrations("memory://", "up")) == [
        "memory:// keeps no schema: nothing to migrate"
    ]


def test_a_failing_migration_rolls_back_alone(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = parse_url(database_url)
    dialect: Dialect = "sqlite" if engine == "sqlite" else "postgres"
    folder = tmp_path / "migrations" / dialect
    folder.mkdir(parents=True)
    real = migrations._folder(dialect)
    shutil.copy(Path(str(real / "0001_initial.up.sql")), folder)
    (folder / "0002_broken.up.sql").write_text(
        "CREATE TABLE extra (id integer);\nSELECT * FROM no_such_table;\n"
    )
    monkeypatch.setattr(migrations, "_folder", lambda _dialect: folder)
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 2)  # 0001 plus the broken 0002

    with pytest.raises(StorageError, match="no_such_table"):
        trio.run(lambda: run_migrations(database_url, "up"))
    with connect(database_url) as (conn, dialect):
        assert migrations.current_version(conn, dialect) == 1  # 0001 stays applied
        assert "extra" not in schema_of(conn)
        assert "rooms" in schema_of(conn)
        with pytest.raises(StorageError, match="cannot be reverted"):
            migrations.migrate_down(conn, dialect)


def test_moderation_up_and_down_keep_the_rooms(database_url: str) -> None:
    """0003 on a database with data: rooms get the setting off, restrictions come and go
    with their room, and reverting drops only what 0003 added."""
    room, user, at = "6f1c0a8e-0000-4000-8000-000000000001", str(uuid.uuid4()), T0.isoformat()

    def restrict(conn: Connection, kind: str, reason: str | None = None) -> None:
        run(
            conn,
            "INSERT INTO room_restrictions (room_id, user_id, kind, reason, created_by,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)",
            room, user, kind, reason, user, at,
        )  # fmt: skip

    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=2)
        run(
            conn,
            "INSERT INTO rooms (id, name, owner_id, content_type, content_id, is_public,"
            " max_participants, playback_control, created_at, updated_at)"
            " VALUES (?, 'Kept', ?, 'movie', 'm-1', ?, 5, 'moderators', ?, ?)",
            room, user, True, at, at,
        )  # fmt: skip
        migrations.migrate_up(conn, dialect, target=3)
        assert run(conn, "SELECT moderators_manage_moderators FROM rooms") == [(False,)]
        restrict(conn, "ban")
        restrict(conn, "mute")
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
            restrict(conn, "kick")
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
            restrict(conn, "ban")  # one ban per user and room
        run(conn, "DELETE FROM room_restrictions")
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.CheckViolation)):
            restrict(conn, "ban", "x" * 501)
        assert run(conn, "SELECT count(*) FROM room_restrictions") == [(0,)]
        restrict(conn, "ban", "x" * 500)

        assert [m.version for m in migrations.migrate_down(conn, dialect)] == [3]
        assert run(conn, "SELECT name, playback_control FROM rooms") == [("Kept", "moderators")]
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=3)] == [3]
        assert run(conn, "SELECT count(*) FROM room_restrictions") == [(0,)]
        restrict(conn, "mute")
        run(conn, "DELETE FROM rooms WHERE id = ?", room)
        assert run(conn, "SELECT count(*) FROM room_restrictions") == [(0,)]  # cascaded


def test_queue_up_gives_every_room_a_one_item_queue_and_down_keeps_the_rooms(
    database_url: str,
) -> None:
    """0004 on a database with rooms: each gets its content as its queue's one, current
    item; the new columns take their defaults; the schema's checks hold; reverting drops
    only what 0004 added, and applying it again makes the queues anew."""
    owners = [str(uuid.uuid4()) for _ in range(3)]
    rooms = [f"6f1c0a8e-0000-4000-8000-00000000000{n}" for n in (1, 2, 3)]
    created = [(T0 + timedelta(seconds=n)).isoformat() for n in range(3)]

    def queue_rows(conn: Connection) -> list[tuple[object, ...]]:
        return run(
            conn,
            "SELECT r.id, q.id, q.ord, q.content_type, q.content_id, q.title, q.duration,"
            " q.shuffle_rank, q.added_by, q.added_at, r.current_item_id FROM rooms r"
            " JOIN queue_items q ON q.room_id = r.id ORDER BY r.id",
        )

    def item(conn: Connection, item_id: str, **values: object) -> None:
        columns = {
            "id": item_id, "room_id": rooms[0], "ord": 5, "content_type": "movie",
            "content_id": "x", "shuffle_rank": 0.5, "added_at": created[0], **values,
        }  # fmt: skip
        marks = ", ".join("?" * len(columns))
        run(conn, f"INSERT INTO queue_items ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            *columns.values())  # fmt: skip

    refused = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=3)
        for n, (room, owner, at) in enumerate(zip(rooms, owners, created, strict=True)):
            run(
                conn,
                "INSERT INTO rooms (id, name, owner_id, content_type, content_id, is_public,"
                " max_participants, created_at, updated_at, ended_at)"
                " VALUES (?, 'Kept', ?, ?, ?, ?, 5, ?, ?, ?)",
                room, owner, "episode", f"e-{n}", True, at, at, at if n == 2 else None,
            )  # fmt: skip
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=4)] == [4]

        found = queue_rows(conn)
        assert len(found) == 3  # ended rooms too: their history says what they played
        for n, row in enumerate(found):
            room_id, item_id, ord_, ctype, cid, title, duration, rank, by, added, current = row
            assert str(room_id) == rooms[n]
            parsed = uuid.UUID(str(item_id))
            assert (str(parsed), parsed.version, parsed.variant) == (str(item_id), 4, uuid.RFC_4122)
            assert str(current) == str(item_id)
            assert (ord_, ctype, cid, title, duration) == (0, "episode", f"e-{n}", None, None)
            assert isinstance(rank, float)
            assert 0 <= rank < 1
            assert str(by) == owners[n]
            assert added in (created[n], T0 + timedelta(seconds=n))  # text or timestamptz
        assert len({row[1] for row in found}) == 3
        assert run(
            conn,
            "SELECT DISTINCT queue_repeat, queue_shuffle, wait_for_slow_members,"
            " start_when_ready FROM rooms",
        ) == [("none", False, "policy", False)]

        # The schema's checks.
        for bad in (
            {"duration": 0}, {"duration": -1.0}, {"duration": 604800.5}, {"shuffle_rank": 1.0},
            {"shuffle_rank": -0.1}, {"ord": -1}, {"ord": 0},  # ord 0 of that room is taken
        ):  # fmt: skip
            with pytest.raises(refused):
                item(conn, str(uuid.uuid4()), **bad)
        for column, value in (
            ("queue_repeat", "twice"), ("wait_for_slow_members", "sometimes"),
        ):  # fmt: skip
            with pytest.raises(refused):
                run(conn, f"UPDATE rooms SET {column} = ? WHERE id = ?", value, rooms[0])  # noqa: S608
        item(conn, str(uuid.uuid4()), duration=604800.0, shuffle_rank=0.0, title="Fine")
        run(conn, "DELETE FROM rooms WHERE id = ?", rooms[0])
        assert run(conn, "SELECT count(*) FROM queue_items WHERE room_id = ?", rooms[0]) == [(0,)]

        # The repository reads what the migration made.
        async def read() -> list[Queue | None]:
            repo = await open_repository(database_url)
            try:
                return [await repo.get_queue(uuid.UUID(room)) for room in rooms]
            finally:
                await repo.aclose()

        gone, second, third = trio.run(read)
        assert gone is None
        for queue, row in zip((second, third), found[1:], strict=True):
            assert queue is not None
            assert queue.current_id == uuid.UUID(str(row[1]))
            assert [(i.content_type, i.content_id) for i in queue.items] == [("episode", row[4])]
            assert (queue.repeat, queue.shuffle) == ("none", False)

        # The repository brought the schema to the newest version: 0008 to 0005 go first.
        down = migrations.migrate_down(conn, dialect, steps=5)
        assert [m.version for m in down] == [8, 7, 6, 5, 4]
        assert "queue_items" not in schema_of(conn)
        assert run(conn, "SELECT id, content_type, content_id FROM rooms ORDER BY id") == [
            (uuid.UUID(rooms[1]) if dialect == "postgres" else rooms[1], "episode", "e-1"),
            (uuid.UUID(rooms[2]) if dialect == "postgres" else rooms[2], "episode", "e-2"),
        ]
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=4)] == [4]
        again = queue_rows(conn)
        assert [(row[0], row[4]) for row in again] == [(row[0], row[4]) for row in found[1:]]
        assert {row[1] for row in again}.isdisjoint({row[1] for row in found})  # drawn anew


def test_concurrent_runners_apply_each_migration_once(database_url: str) -> None:
    applied: list[int] = []

    def run_one() -> None:
        with connect(database_url) as (conn, dialect):
            applied.extend(m.version for m in migrations.migrate_up(conn, dialect))

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(trio.to_thread.run_sync, run_one)

    trio.run(main)
    assert sorted(applied) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_sqlite_statement_splitting() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (v TEXT DEFAULT 'a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET v = 'x;y';
    END;
    /* block; comment */ INSERT INTO t (v) VALUES ('c'); INSERT INTO t DEFAULT VALUES
    """
    statements = migrations._split_sqlite(script)
    assert len(statements) == 4
    with closing(sqlite3.connect(":memory:")) as conn:
        for statement in statements:
            conn.execute(statement)
        assert conn.execute("SELECT v FROM t").fetchall() == [("x;y",), ("x;y",)]


def test_syncplay_password_up_leaves_old_rooms_without_a_verifier_and_down_keeps_them(
    database_url: str,
) -> None:
    """0005 on a database with rooms: none has a verifier (no password is known to make one
    from), the schema refuses a verifier without a password, and reverting drops only the
    verifier."""
    locked, open_ = "6f1c0a8e-0000-4000-8000-000000000001", "6f1c0a8e-0000-4000-8000-000000000002"
    owner, at = str(uuid.uuid4()), T0.isoformat()

    def rooms(conn: Connection, columns: str) -> list[tuple[object, ...]]:
        return run(conn, f"SELECT {columns} FROM rooms ORDER BY id")  # noqa: S608 (test constant)

    refused = (sqlite3.IntegrityError, psycopg.errors.CheckViolation)
    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=4)
        for room, password_hash in ((locked, "$argon2id$old"), (open_, None)):
            run(
                conn,
                "INSERT INTO rooms (id, name, owner_id, content_type, content_id, is_public,"
                " password_hash, max_participants, created_at, updated_at)"
                " VALUES (?, 'Kept', ?, 'movie', 'm-1', ?, ?, 5, ?, ?)",
                room, owner, True, password_hash, at, at,
            )  # fmt: skip
        assert [m.version for m in migrations.migrate_up(conn, dialect)] == [5, 6, 7, 8]
        assert rooms(conn, "password_hash, syncplay_password_hash") == [
            ("$argon2id$old", None),
            (None, None),
        ]

        with pytest.raises(refused):
            run(conn, "UPDATE rooms SET syncplay_password_hash = 'v' WHERE id = ?", open_)
        run(conn, "UPDATE rooms SET syncplay_password_hash = 'v' WHERE id = ?", locked)
        with pytest.raises(refused):  # the password may not go and leave its verifier behind
            run(conn, "UPDATE rooms SET password_hash = NULL WHERE id = ?", locked)
        run(conn, "UPDATE rooms SET syncplay_password_hash = NULL WHERE id = ?", locked)

        # The repository reads a room from before as one with a password and no verifier.
        async def read() -> Room | None:
            repo = await open_repository(database_url, auto_migrate=False)
            try:
                return await repo.get_room(uuid.UUID(locked))
            finally:
                await repo.aclose()

        old = trio.run(read)
        assert old is not None
        assert (old.has_password, old.password_hash, old.syncplay_password_hash) == (
            True,
            "$argon2id$old",
            None,
        )

        run(conn, "UPDATE rooms SET syncplay_password_hash = 'v' WHERE id = ?", locked)
        assert [m.version for m in migrations.migrate_down(conn, dialect, steps=4)] == [8, 7, 6, 5]
        assert rooms(conn, "id, name, password_hash") == [
            (uuid.UUID(locked) if dialect == "postgres" else locked, "Kept", "$argon2id$old"),
            (uuid.UUID(open_) if dialect == "postgres" else open_, "Kept", None),
        ]
        # Applied again, it knows no verifier: the one from before the revert is gone.
        assert [m.version for m in migrations.migrate_up(conn, dialect)] == [5, 6, 7, 8]
        assert rooms(conn, "syncplay_password_hash") == [(None,), (None,)]


def test_cluster_up_and_down_keep_the_rooms(database_url: str) -> None:
    """0006 on a database with rooms: owner rows need their room and go with it, a node id
    is one row, and reverting drops only the two tables."""
    room, gone, at = (
        "6f1c0a8e-0000-4000-8000-000000000001",
        "6f1c0a8e-0000-4000-8000-000000000002",
        T0.isoformat(),
    )

    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=5)
        insert_room(conn, room, at)
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=6)] == [6]
        assert run(conn, "SELECT count(*) FROM room_owners") == [(0,)]

        node = (
            "INSERT INTO nodes (node_id, url, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)"
        )
        run(conn, node, "node-a", "http://a", 10, at, at)
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.UniqueViolation)):
            run(conn, node, "node-a", "http://b", 11, at, at)
        owner = "INSERT INTO room_owners (room_id, node_id, since) VALUES (?, ?, ?)"
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.ForeignKeyViolation)):
            run(conn, owner, gone, "node-a", at)
        # Not a foreign key to nodes: a row may name a node that is gone.
        run(conn, owner, room, "node-z", at)
        run(conn, "DELETE FROM rooms WHERE id = ?", room)
        assert run(conn, "SELECT count(*) FROM room_owners") == [(0,)]  # cascaded

        insert_room(conn, room, at)
        run(conn, owner, room, "node-a", at)
        assert [m.version for m in migrations.migrate_down(conn, dialect)] == [6]
        assert not {"nodes", "room_owners"} & set(schema_of(conn))
        assert run(conn, "SELECT name FROM rooms") == [("Kept",)]
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=6)] == [6]
        assert run(conn, "SELECT count(*) FROM nodes") == [(0,)]


def test_node_bridge_up_and_down_keep_the_nodes(database_url: str) -> None:
    """0007 on a database with registered nodes: their rows stay, with no bridge (NULL)
    until their node registers again; reverting drops only the column, and applying it
    again brings it back NULL."""
    at = T0.isoformat()

    def nodes(conn: Connection) -> list[tuple[object, ...]]:
        return run(conn, "SELECT node_id, url, pid FROM nodes ORDER BY node_id")

    old = [("node-a", "http://a:8096", 10), ("node-b", "http://[::1]:8096", 11)]
    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=6)
        for node_id, url, pid in old:
            run(
                conn,
                "INSERT INTO nodes (node_id, url, pid, started_at, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?)",
                node_id, url, pid, at, at,
            )  # fmt: skip
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=7)] == [7]
        assert ("syncplay_bridge", True) in schema_of(conn)["nodes"]
        assert nodes(conn) == old
        assert run(conn, "SELECT syncplay_bridge FROM nodes") == [(None,), (None,)]
        run(conn, "UPDATE nodes SET syncplay_bridge = ? WHERE node_id = ?", "[::1]:8999", "node-b")
        assert run(conn, "SELECT syncplay_bridge FROM nodes WHERE node_id = 'node-b'") == [
            ("[::1]:8999",)
        ]

        assert [m.version for m in migrations.migrate_down(conn, dialect)] == [7]
        assert "syncplay_bridge" not in {c for c, _ in schema_of(conn)["nodes"]}
        assert nodes(conn) == old
        assert [m.version for m in migrations.migrate_up(conn, dialect, target=7)] == [7]
        assert nodes(conn) == old
        # Applied again, it knows no bridge: the one from before the revert is gone.
        assert run(conn, "SELECT syncplay_bridge FROM nodes") == [(None,), (None,)]


def test_secret_attempts_up_and_down_keep_the_rest(database_url: str) -> None:
    """0008 on a database with a room and a registered node: the new table starts empty,
    holds one row per (scope, key) with a count that never goes below 0, and reverting
    drops only the table (and its index); applying it again makes it empty anew."""
    room, at = "6f1c0a8e-0000-4000-8000-000000000001", T0.isoformat()

    def attempts(conn: Connection) -> list[tuple[object, ...]]:
        return run(conn, "SELECT scope, key, count FROM secret_attempts ORDER BY scope, key")

    insert = "INSERT INTO secret_attempts (scope, key, window_start, count) VALUES (?, ?, ?, ?)"
    refused = (sqlite3.IntegrityError, psycopg.errors.IntegrityError)
    with connect(database_url) as (conn, dialect):
        migrations.migrate_up(conn, dialect, target=7)
        insert_room(conn, room, at)
        run(
            conn,
            "INSERT INTO nodes (node_id, url, pid, started_at, heartbeat_at, syncplay_bridge)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            "node-a", "http://a:8096", 10, at, at, "[::1]:8999",
        )  # fmt: skip
        assert [m.version for m in migrations.migrate_up(conn, dialect)] == [8]
        assert attempts(conn) == []
        assert "secret_attempts_window_idx" in indexes_of(conn)

        run(conn, insert, "user", "u-1", at, 3)
        run(conn, insert, "address", "u-1", at, 0)  # the same key in another scope
        with pytest.raises(refused):
            run(conn, insert, "user", "u-1", at, 1)  # one row per (scope, key)
        with pytest.raises(refused):
            run(conn, insert, "user", "u-2", at, -1)
        with pytest.raises(refused):
            run(conn, "UPDATE secret_attempts SET count = count - 1 WHERE count = 0")
        with pytest.raises(refused):
            run(conn, insert, "user", "u-3", None, 1)
        assert attempts(conn) == [("address", "u-1", 0), ("user", "u-1", 3)]

        assert [m.version for m in migrations.migrate_down(conn, dialect)] == [8]
        assert "secret_attempts" not in schema_of(conn)
        assert "secret_attempts_window_idx" not in indexes_of(conn)
        assert run(conn, "SELECT name FROM rooms") == [("Kept",)]
        assert run(conn, "SELECT node_id, syncplay_bridge FROM nodes") == [("node-a", "[::1]:8999")]
        assert [m.version for m in migrations.migrate_up(conn, dialect)] == [8]
        assert attempts(conn) == []
