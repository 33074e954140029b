"""The ``syncplayd`` command: config checking, migrations, refusing a newer database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncplayd.cli.common import EXIT_CONFIG
from syncplayd.cli.daemon import main
from syncplayd.storage.migrations import SCHEMA_VERSION
from tests.daemon_process import daemon_environment


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in list(__import__("os").environ):
        if name.startswith("SYNCPLAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCPLAY_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


def test_check_config_accepts_a_good_file(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "server:\n  listen: 127.0.0.1:9000\nsyncplay:\n  sync:\n    threshold_seconds: 3\n"
    )
    result = runner.invoke(main, ["--config", str(config), "--check-config"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "configuration OK"


def test_example_config_passes_check(runner: CliRunner) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    result = runner.invoke(main, ["--config", str(example), "--check-config"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("yaml_text", "env", "flags", "expected"),
    [
        (
            "syncplay:\n  sync:\n    treshold_seconds: 3\n",
            {},
            [],
            "'syncplay.sync.treshold_seconds': unknown key",
        ),
        ("syncplay:\n  chat:\n    history_limit: lots\n", {}, [], "'syncplay.chat.history_limit'"),
        (
            "",
            {"SYNCPLAY_SYNC_THRESHOLD_SECONDS": "abc"},
            [],
            "(from SYNCPLAY_SYNC_THRESHOLD_SECONDS)",
        ),
        ("", {"SYNCPLAY_ENABLED": "perhaps"}, [], "'syncplay.enabled'"),
        ("", {}, ["--listen", "nowhere"], "'server.listen'"),
        ("", {}, ["--database-url", "mysql://x"], "'database.url'"),
        ("server: [\n", {}, [], "line"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(
    runner: CliRunner,
    tmp_path: Path,
    yaml_text: str,
    env: dict[str, str],
    flags: list[str],
    expected: str,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml_text)
    result = runner.invoke(main, ["--config", str(config), *flags, "--check-config"], env=env)
    assert result.exit_code == EXIT_CONFIG
    message = result.output.strip()
    assert "\n" not in message and expected in message, message
    assert "Traceback" not in result.output


def test_config_from_environment_variable(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("bogus: 1\n")
    result = runner.invoke(main, ["--check-config"], env={"SYNCPLAY_CONFIG": str(config)})
    assert result.exit_code == EXIT_CONFIG
    assert "'bogus'" in result.output


def test_migrate_up_status_down(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    status = runner.invoke(main, ["--database-url", url, "migrate", "status"])
    assert status.exit_code == 0, status.output
    assert "pending" in status.output.lower()
    up = runner.invoke(main, ["--database-url", url, "migrate", "up"])
    assert up.exit_code == 0, up.output
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        tables = {
            row[0] for row in conn.execute("select name from sqlite_master where type='table'")
        }
    assert {"rooms", "participants", "chat_messages", "events", "invitations"} <= tables
    down = runner.invoke(main, ["--database-url", url, "migrate", "down", "--steps", "2"])
    assert down.exit_code == 0, down.output
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        tables = {
            row[0] for row in conn.execute("select name from sqlite_master where type='table'")
        }
    assert "rooms" not in tables


def test_daemon_refuses_a_newer_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    runner = CliRunner()
    assert runner.invoke(main, ["--database-url", url, "migrate", "up"]).exit_code == 0
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute(
            "insert into schema_migrations (version, name, applied_at)"
            " values (?, 'future', '2030-01-01')",
            (SCHEMA_VERSION + 1,),
        )
    env = daemon_environment(url, tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-m", "syncplayd"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "only knows versions up to" in result.stderr and "upgrade syncplayd" in result.stderr
