"""The ``syncplayd`` command: config checking, migrations, refusing to start.

Each start-up failure is tried on the daemon as a real process: one line on
stderr that names the cause and the fix, no traceback, and the documented exit
status (docs/deployment.md: 78 for a bad configuration, 1 for the rest).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

from syncplayd.cli.common import EXIT_CONFIG
from syncplayd.cli.daemon import main
from syncplayd.storage.migrations import SCHEMA_VERSION
from tests.daemon_process import SECRET, daemon_environment, run_daemon


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
    down = runner.invoke(
        main, ["--database-url", url, "migrate", "down", "--steps", str(SCHEMA_VERSION)]
    )
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


# --- start-up failures, on the daemon as a real process ----------------------------------------


@dataclass
class Refusal:
    status: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " ERROR " in line]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def start_daemon(
    state_dir: Path,
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    prefix: Sequence[str] = (),
    secret: str | None = None,
) -> Refusal:
    """Run ``syncplayd`` until it exits, logging as on a terminal (plain text)."""
    environ = daemon_environment(None, state_dir, secret)
    environ["SYNCPLAY_LOG_FORMAT"] = "text"
    environ.update(env or {})
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "syncplayd", *flags],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Refusal(result.returncode, result.stderr)


def assert_one_line(refusal: Refusal, status: int, *expected: str) -> str:
    assert refusal.status == status, refusal.stderr
    assert "Traceback" not in refusal.stderr, refusal.stderr
    [line] = refusal.error_lines or [refusal.stderr.strip()]
    assert "\n" not in line
    for text in expected:
        assert text in line, line
    return line


@pytest.fixture
def unprivileged() -> list[str]:
    """A command prefix under which file modes and privileged ports apply to the daemon.

    As root that means without capabilities (``setpriv``, util-linux): root
    keeps its uid, so the files it creates are still its own to clean up.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        _unavailable("setpriv (util-linux) is needed to drop root's capabilities")
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"]


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may enter (without root's capabilities)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o000)
    yield folder
    folder.chmod(0o755)  # so that pytest can clean up


def test_port_in_use_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        refusal = start_daemon(tmp_path / "state", ["--listen", address])
    assert_one_line(
        refusal,
        1,
        f"cannot start: cannot listen on {address}: the address is in use (another syncplayd?)",
        "--listen HOST:PORT or SYNCPLAY_LISTEN",
    )


def test_a_privileged_port_is_one_line_naming_the_fix(
    tmp_path: Path, unprivileged: list[str]
) -> None:
    first_free = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    if first_free <= 1:
        pytest.skip("every port is unprivileged on this machine")
    refusal = start_daemon(tmp_path / "state", ["--listen", "127.0.0.1:1"], prefix=unprivileged)
    assert_one_line(
        refusal,
        1,
        "cannot listen on 127.0.0.1:1: permission denied",
        "CAP_NET_BIND_SERVICE",
        "choose a port from 1024 up with --listen",
    )


def test_an_address_not_on_this_machine_is_one_line(tmp_path: Path) -> None:
    # 192.0.2.0/24 is reserved for documentation: no interface has it, nothing is sent.
    refusal = start_daemon(tmp_path / "state", ["--listen", "192.0.2.1:8750"])
    assert_one_line(
        refusal,
        1,
        "cannot listen on 192.0.2.1:8750: no network interface of this machine has that address",
        "--listen",
    )


def test_an_unresolvable_host_is_one_line(tmp_path: Path) -> None:
    # In a network namespace of its own, the lookup fails without leaving this machine.
    unshare = shutil.which("unshare")
    if unshare is None:
        _unavailable("unshare (util-linux) is needed for a private network namespace")
    prefix = [unshare, "-n"] if os.geteuid() == 0 else [unshare, "-rn"]
    if subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode != 0:
        _unavailable("cannot create a network namespace here")
    refusal = start_daemon(
        tmp_path / "state", ["--listen", "syncplayd-test.invalid:8750"], prefix=prefix
    )
    assert_one_line(
        refusal,
        1,
        "cannot listen on syncplayd-test.invalid:8750: the host name does not resolve",
        "use an IP address, or a name this machine resolves, with --listen",
    )


def test_a_state_folder_that_cannot_be_created_is_one_line(
    tmp_path: Path, unprivileged: list[str], locked_folder: Path
) -> None:
    state_dir = locked_folder / "state"
    refusal = start_daemon(state_dir, prefix=unprivileged)
    assert_one_line(
        refusal,
        1,
        f"cannot start: cannot use the state folder {state_dir}: Permission denied",
        "--state-dir DIR or SYNCPLAY_STATE_DIR",
    )


def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, unprivileged: list[str], locked_folder: Path
) -> None:
    path = locked_folder / "syncplayd.sqlite3"
    refusal = start_daemon(
        tmp_path / "state",
        ["--database-url", f"sqlite:///{path}"],
        prefix=unprivileged,
        secret="a-configured-secret-0123456789abcdef",
    )
    assert_one_line(refusal, 1, "cannot start: ", str(path), "--database-url URL")


def test_an_unreachable_database_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refusal = start_daemon(
        tmp_path / "state", ["--database-url", f"postgresql://syncplayd@127.0.0.1:{port}/x"]
    )
    assert_one_line(refusal, 1, "cannot start: ", f"port {port} failed: Connection refused")


def test_an_unreadable_secret_file_is_a_configuration_error(
    tmp_path: Path, unprivileged: list[str]
) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text("a-configured-secret-0123456789abcdef\n")
    secret.chmod(0o000)
    refusal = start_daemon(
        tmp_path / "state", env={"SYNCPLAY_AUTH_JWT_SECRET_FILE": str(secret)}, prefix=unprivileged
    )
    assert_one_line(
        refusal,
        EXIT_CONFIG,
        "'auth.jwt_secret_file' (from SYNCPLAY_AUTH_JWT_SECRET_FILE)",
        f"cannot read '{secret}': Permission denied",
    )


def test_a_proxy_socket_path_that_cannot_be_bound_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / ("p" * 120 + ".sock")  # a unix socket address holds 107 bytes
    refusal = start_daemon(tmp_path / "state", env={"SYNCPLAY_PROXY_SOCKET": str(path)})
    assert_one_line(
        refusal,
        1,
        f"cannot start: cannot bind the proxy socket {path}",
        "choose another path with proxy.socket (SYNCPLAY_PROXY_SOCKET)",
    )


def test_an_admin_socket_path_taken_by_a_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "admin.sock"
    path.write_text("not a socket")
    refusal = start_daemon(tmp_path / "state", env={"SYNCPLAY_ADMIN_SOCKET": str(path)})
    assert_one_line(
        refusal,
        1,
        f"{path} exists and is not a socket",
        "choose another path with admin.socket (SYNCPLAY_ADMIN_SOCKET)",
    )
    assert path.read_text() == "not a socket"


def test_a_second_daemon_on_the_same_port_is_told_so(tmp_path: Path) -> None:
    """``make run`` twice: the second is refused for the port, the first keeps serving."""
    state_dir = tmp_path / "state"
    with run_daemon(None, state_dir) as first:
        address = first.base_url.removeprefix("http://")
        refusal = start_daemon(state_dir, ["--listen", address], secret=SECRET)
        assert first.client().get("/healthz").status_code == 200
    assert_one_line(refusal, 1, f"cannot listen on {address}: the address is in use")
