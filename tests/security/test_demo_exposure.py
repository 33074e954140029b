"""Settings that load but expose the daemon: refused at start and by ``--check-config``.

Demo mode hands a guest token to whoever opens the page: on ``0.0.0.0`` (as
``make run ARGS='--listen 0.0.0.0:8750'`` once suggested) that is everyone on the
network. And half of the proxy's TCP channel, an address without the secret,
would believe identity headers from every local process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from syncplayd.cli.common import EXIT_CONFIG
from syncplayd.cli.daemon import main
from tests.daemon_process import daemon_environment

PROXY_SECRET = "proxy-secret-for-the-tests-0123456789abcdef"


def check_config(tmp_path: Path, flags: list[str], env: dict[str, str]) -> Result:
    """``syncplayd [flags] --check-config`` with ``env`` as the only ``SYNCPLAY_*`` variables."""
    environment: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SYNCPLAY_")}
    environment |= {"SYNCPLAY_STATE_DIR": str(tmp_path / "state"), **env}
    return CliRunner().invoke(main, [*flags, "--check-config"], env=environment)


@pytest.mark.parametrize(
    ("flags", "env", "where"),
    [
        (["--listen", "0.0.0.0:8750", "--demo"], {}, "'web.demo'"),
        (["--demo"], {"SYNCPLAY_LISTEN": "[::]:8750"}, "'web.demo'"),
        (["--listen", "192.0.2.10:8750"], {"SYNCPLAY_WEB_DEMO": "true"}, "'web.demo'"),
        (["--demo", "--listen", "media.example.org:8750"], {}, "'web.demo'"),
        ([], {"SYNCPLAY_PROXY_TRUSTED_ADDRESSES": "127.0.0.1"}, "'proxy.trusted_addresses'"),
        ([], {"SYNCPLAY_PROXY_SECRET": PROXY_SECRET}, "'proxy.secret'"),
    ],
)
def test_check_config_refuses_an_exposing_combination(
    tmp_path: Path, flags: list[str], env: dict[str, str], where: str
) -> None:
    result = check_config(tmp_path, flags, env)
    assert result.exit_code == EXIT_CONFIG, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"syncplayd: Error in configuration at {where}: "), lines


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--listen", "127.0.0.1:8750", "--demo"], {}),
        (["--listen", "[::1]:8750", "--demo"], {}),
        (["--listen", "localhost:8750", "--demo"], {}),
        (["--listen", "0.0.0.0:8750", "--demo", "--demo-remote"], {}),
        (["--listen", "0.0.0.0:8750", "--demo"], {"SYNCPLAY_WEB_DEMO_ALLOW_REMOTE": "true"}),
        # Not in demo mode, any address is fine.
        (["--listen", "0.0.0.0:8750"], {}),
        (
            [],
            {
                "SYNCPLAY_PROXY_TRUSTED_ADDRESSES": "127.0.0.1",
                "SYNCPLAY_PROXY_SECRET": PROXY_SECRET,
            },
        ),
        ([], {"SYNCPLAY_PROXY_SOCKET": "/run/syncplayd-proxy/http.sock"}),
    ],
)
def test_check_config_accepts_the_safe_ones(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    result = check_config(tmp_path, flags, env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "configuration OK"


def test_the_daemon_does_not_start_a_public_demo(tmp_path: Path) -> None:
    env = daemon_environment(None, tmp_path / "state")
    env |= {"SYNCPLAY_LISTEN": "0.0.0.0:0", "SYNCPLAY_WEB_DEMO": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "syncplayd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "listening" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "demo mode hands a guest token to anyone who can reach 0.0.0.0:0" in lines[0]
    assert "web.demo_allow_remote" in lines[0]
