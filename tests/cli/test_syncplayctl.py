"""``syncplayctl`` without a daemon: tokens, config, db, help, the client's error mapping.

The online commands against a real daemon are in ``test_ctl_daemon.py``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import click
import httpx
import jwt
import pytest
import yaml
from click.testing import CliRunner

from syncplayd.cli.admin_client import AdminClient, DaemonUnreachable, ProblemError, TokenRefused
from syncplayd.cli.ctl import main, migrations_json
from syncplayd.cli.output import cell, table
from syncplayd.identity import decode_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
USER = "6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in list(os.environ):
        if name.startswith("SYNCPLAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCPLAY_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


def test_token_create_signs_with_the_configured_secret(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        ["token", "create", "--user", USER, "--name", "Ada", "--ttl", "2h"],
        env={"SYNCPLAY_AUTH_JWT_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    principal = decode_token(token, SECRET)
    assert (principal.user_id, principal.name, principal.is_admin) == (UUID(USER), "Ada", False)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    lifetime = claims["exp"] - datetime.now(UTC).timestamp()
    assert 7100 < lifetime <= 7200


def test_token_create_admin(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        ["token", "create", "--user", USER, "--name", "Root", "--admin"],
        env={"SYNCPLAY_AUTH_JWT_SECRET": SECRET},
    )
    assert result.exit_code == 0, result.output
    assert decode_token(result.output.strip(), SECRET).is_admin


def test_token_create_uses_the_generated_secret(runner: CliRunner, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "jwt_secret").write_text(SECRET + "\n")
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"])
    assert result.exit_code == 0, result.output
    assert decode_token(result.output.strip(), SECRET).name == "Ada"


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "bob", "--name", "Ada"],
        ["--user", USER, "--name", "Ada", "--ttl", "forever"],
        ["--user", USER, "--name", "Ada", "--ttl", "0h"],
        ["--user", USER, "--name", "Ada", "--ttl", "400d"],
        ["--user", USER, "--name", "  "],
        ["--name", "Ada"],
    ],
)
def test_token_create_rejects_bad_arguments(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(
        main, ["token", "create", *args], env={"SYNCPLAY_AUTH_JWT_SECRET": SECRET}
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_token_create_without_any_secret_fails_cleanly(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    state = tmp_path / "state"
    assert line.startswith(
        f"syncplayctl: no auth.jwt_secret configured and no generated secret at {state}/jwt_secret:"
        f" it looked in the state folder {state} (from SYNCPLAY_STATE_DIR)"
    )
    assert "If the daemon uses another state folder, set SYNCPLAY_STATE_DIR to it" in line
    assert "SYNCPLAY_AUTH_JWT_SECRET" in line
    assert "start the daemon once" not in line  # it may well be running, elsewhere


def test_token_create_points_at_the_checkouts_state(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCPLAY_STATE_DIR")
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "jwt_secret").write_text(SECRET)
    monkeypatch.chdir(tmp_path)
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": None}
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"], env=env)
    assert result.exit_code == 1
    assert "SYNCPLAY_STATE_DIR is not set and no --config is given" in result.stderr
    assert result.stderr.rstrip().endswith(f"SYNCPLAY_STATE_DIR={tmp_path / '.state'}")
    # Following the hint works.
    env["SYNCPLAY_STATE_DIR"] = str(tmp_path / ".state")
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"], env=env)
    assert result.exit_code == 0, result.output
    assert decode_token(result.stdout.strip(), SECRET).name == "Ada"


def test_token_create_with_an_unreadable_secret(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "state" / "jwt_secret").mkdir(parents=True)  # not a file
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"syncplayctl: cannot read the generated secret {tmp_path / 'state' / 'jwt_secret'}: "
    )


# -- the command tree ---------------------------------------------------------------------
def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in group.commands.items():
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


ALL_COMMANDS = sorted(path for path, _ in _commands(main))


def test_the_full_command_set_exists() -> None:
    expected = {
        ("rooms", "list"), ("rooms", "show"), ("rooms", "create"), ("rooms", "update"),
        ("rooms", "end"), ("rooms", "bans"), ("rooms", "transfer"), ("participants", "list"),
        ("participants", "kick"), ("participants", "promote"), ("participants", "demote"),
        ("participants", "ban"), ("participants", "unban"), ("participants", "mute"),
        ("participants", "unmute"),
        ("chat", "history"), ("chat", "delete"), ("invitations", "create"),
        ("invitations", "show"), ("invitations", "revoke"), ("invitations", "purge-expired"),
        ("invitations", "list"),
        ("events",), ("token", "create"), ("db", "migrate"), ("db", "status"),
        ("config", "check"), ("config", "show"), ("status",),
    }  # fmt: skip
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_has_help(runner: CliRunner, path: tuple[str, ...]) -> None:
    command = dict(_commands(main))[path]
    assert command.help and command.help.strip(), f"{' '.join(path)} has no docstring"
    # --help needs no configuration, not even a readable one.
    result = runner.invoke(main, [*path, "--help"], env={"SYNCPLAY_CONFIG": "/nonexistent.yaml"})
    assert result.exit_code == 0, result.output
    assert command.help.split("\n")[0] in result.output


def test_group_help_documents_completion_and_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "_SYNCPLAYCTL_COMPLETE=bash_source syncplayctl" in result.output
    assert "78 bad configuration" in " ".join(result.output.split())


def test_completion_script(runner: CliRunner) -> None:
    result = runner.invoke(
        main, [], env={"_SYNCPLAYCTL_COMPLETE": "bash_source"}, prog_name="syncplayctl"
    )
    assert result.exit_code == 0
    assert "_syncplayctl_completion()" in result.output


def test_global_options_may_follow_offline_commands(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  listen: 127.0.0.1:9999\n")
    result = runner.invoke(main, ["config", "show", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["server"]["listen"] == "127.0.0.1:9999"
    args = ["token", "create", "--user", USER, "--name", "Ada", "--json"]
    result = runner.invoke(main, args, env={"SYNCPLAY_AUTH_JWT_SECRET": SECRET})
    assert decode_token(json.loads(result.stdout)["token"], SECRET).name == "Ada"


def test_every_command_takes_the_global_options() -> None:
    shared = {"--config", "--url", "--token-file", "--public-url", "--json"}
    for path, command in _commands(main):
        given = {opt for param in command.params for opt in param.opts}
        assert shared <= given, " ".join(path)


def test_a_bad_url_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--url", "ftp://example.org", "status"])
    assert result.exit_code == 2
    assert "--url" in result.output


# -- config (offline) -------------------------------------------------------------------------
def test_config_check(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["config", "check"])
    assert (result.exit_code, result.output) == (0, "configuration OK\n")
    result = runner.invoke(main, ["--json", "config", "check"])
    body = json.loads(result.output)
    assert body["ok"] is True
    assert body["admin_socket"] == str(tmp_path / "state" / "admin.sock")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  lisen: 1\n", "lisen"),
        ("database:\n  pool_size: abc\n", "database.pool_size"),
    ],
)
def test_config_check_refuses_a_bad_file(
    runner: CliRunner, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = runner.invoke(main, ["--config", str(path), "config", "check"])
    assert result.exit_code == 78
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_config_check_of_a_missing_file(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "check"], env={"SYNCPLAY_CONFIG": "/nonexistent.yaml"})
    assert result.exit_code == 78
    assert "/nonexistent.yaml" in result.stderr


def test_config_show_masks_secrets(runner: CliRunner) -> None:
    env = {
        "SYNCPLAY_AUTH_JWT_SECRET": SECRET,
        "SYNCPLAY_DATABASE_URL": "postgresql://syncplayd:hunter2hunter2@db.example/syncplayd",
    }
    human = runner.invoke(main, ["config", "show"], env=env)
    assert human.exit_code == 0, human.output
    shown = yaml.safe_load(human.stdout)
    assert shown["auth"]["jwt_secret"] == "**********"
    data = json.loads(runner.invoke(main, ["--json", "config", "show"], env=env).stdout)
    assert data["auth"]["jwt_secret"] == "**********"
    assert data["database"]["url"] == "postgresql://syncplayd:**********@db.example/syncplayd"
    for output in (human.output, json.dumps(data)):
        assert SECRET not in output and "hunter2" not in output


# -- db (offline) ---------------------------------------------------------------------------------
def test_db_migrate_and_status(runner: CliRunner, tmp_path: Path) -> None:
    env = {"SYNCPLAY_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    pending = json.loads(runner.invoke(main, ["--json", "db", "status"], env=env).stdout)
    assert pending["migrations"] and {m["state"] for m in pending["migrations"]} == {"pending"}
    assert not (tmp_path / "db.sqlite3").exists()  # status creates nothing

    up = runner.invoke(main, ["--json", "db", "migrate"], env=env)
    assert up.exit_code == 0, up.output
    applied = json.loads(up.stdout)
    count = len(pending["migrations"])
    assert [m["version"] for m in applied["applied"]] == list(range(1, count + 1))
    assert applied["schema_version"] == applied["code_version"] == count

    status = json.loads(runner.invoke(main, ["--json", "db", "status"], env=env).stdout)
    assert all(m["state"] == "applied" and m["applied_at"] for m in status["migrations"])
    human = runner.invoke(main, ["db", "status"], env=env)
    assert human.exit_code == 0 and "0001_" in human.stdout

    down = json.loads(runner.invoke(main, ["--json", "db", "migrate", "down"], env=env).stdout)
    assert [m["version"] for m in down["reverted"]] == [count]
    assert down["schema_version"] == count - 1


def test_db_status_with_the_database_down(runner: CliRunner) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"SYNCPLAY_DATABASE_URL": f"postgresql://u:p@127.0.0.1:{port}/x?connect_timeout=2"}
    result = runner.invoke(main, ["db", "status"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("syncplayctl: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_migrations_json_keeps_unknown_lines() -> None:
    assert migrations_json("up", ["memory:// keeps no schema"])["messages"] == [
        "memory:// keeps no schema"
    ]
    status = migrations_json("status", ["0003_future  applied by a newer syncplayd"])
    assert status["migrations"] == [
        {"version": 3, "name": "future", "state": "applied by a newer syncplayd",
         "applied_at": None}
    ]  # fmt: skip


def test_token_create_json(runner: CliRunner) -> None:
    result = runner.invoke(
        main,
        ["--json", "token", "create", "--user", USER, "--name", "Ada", "--admin", "--ttl", "15m"],
        env={"SYNCPLAY_AUTH_JWT_SECRET": SECRET},
    )
    body = json.loads(result.stdout)
    assert body["expires_in_seconds"] == 900
    assert decode_token(body["token"], SECRET).is_admin


# -- the admin client, with a fake daemon ------------------------------------------------------
def _fake(handler: Callable[[httpx.Request], httpx.Response]) -> AdminClient:
    return AdminClient("http://daemon.test", token="t0k", transport=httpx.MockTransport(handler))


def test_admin_client_sends_the_token_and_encodes_queries() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "total": 0, "limit": 5, "offset": 0})

    with _fake(handler) as client:
        client.list_rooms(status="all", public_only=True, limit=5)
    (request,) = seen
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.url.path == "/api/v1/admin/rooms"
    assert dict(request.url.params) == {"status": "all", "public": "true", "limit": "5",
                                        "offset": "0"}  # fmt: skip


def _problem(
    status: int, code: str, detail: str, *, challenge: str | None = None
) -> httpx.Response:
    body = {"type": f"urn:syncplayd:problem:{code}", "title": "x", "status": status,
            "detail": detail, "code": code}  # fmt: skip
    headers = {"content-type": "application/problem+json"}
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    return httpx.Response(status, json=body, headers=headers)


ADMIN_CHALLENGE = 'Bearer realm="syncplayd-admin", error="insufficient_scope"'


@pytest.mark.parametrize(
    ("response", "kind", "text"),
    [
        (_problem(401, "unauthorized", "token expired"), TokenRefused,
         "the admin token was refused (401: token expired)"),
        (_problem(403, "forbidden", "not an admin", challenge=ADMIN_CHALLENGE), TokenRefused,
         "the admin token was refused (403: not an admin)"),
        # A 403 without a challenge is the request refused, not the token.
        (_problem(403, "forbidden", "nobody can do that to the room's owner"), ProblemError,
         "nobody can do that to the room's owner (403 forbidden)"),
        (_problem(403, "public-rooms-disabled", "public rooms are disabled"), ProblemError,
         "public rooms are disabled (403 public-rooms-disabled)"),
        (_problem(404, "not-found", "room not found"), ProblemError,
         "room not found (404 not-found)"),
        (httpx.Response(200, text="<html>hello</html>"), DaemonUnreachable,
         "cannot reach the daemon at http://daemon.test: the answer is not JSON (HTTP 200):"
         " not syncplayd?"),
    ],
)  # fmt: skip
def test_admin_client_errors(response: httpx.Response, kind: type[Exception], text: str) -> None:
    with _fake(lambda request: response) as client, pytest.raises(kind) as caught:
        client.status()
    assert str(caught.value) == text


def test_admin_client_refuses_unknown_urls() -> None:
    with pytest.raises(ValueError, match="unix:, http:// or https://"):
        AdminClient("ftp://x")
    with pytest.raises(ValueError, match="socket path"):
        AdminClient("unix:")


# -- output ---------------------------------------------------------------------------------------
def test_table_aligns_columns() -> None:
    assert table(["A", "LONGER"], [["xyz", "1"], ["q", "22"]]).splitlines() == [
        "A    LONGER",
        "xyz  1",
        "q    22",
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "-"), (True, "yes"), (False, "no"), ("a\nb", "a b"), ({"k": 1}, '{"k":1}'),
     ("x" * 70, "x" * 59 + "…")],
)  # fmt: skip
def test_cell(value: object, text: str) -> None:
    assert cell(value) == text
