"""``syncplayctl token create``: tokens the daemon accepts."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import jwt
import pytest
from click.testing import CliRunner

from syncplayd.cli.ctl import main
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


def test_token_create_without_any_secret_fails_cleanly(runner: CliRunner) -> None:
    result = runner.invoke(main, ["token", "create", "--user", USER, "--name", "Ada"])
    assert result.exit_code == 1
    assert "no auth.jwt_secret configured" in result.output
