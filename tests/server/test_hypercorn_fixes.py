"""The hypercorn fixes: refused on a release they were not checked against, installed once.

What each fix fixes is tested where its bug shows: tests/fuzz/test_websocket_fuzzer.py
and tests/server/test_connection_garbage.py.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server

from syncplayd.config import load_settings
from syncplayd.server.process import daemon, hypercorn_fixes
from syncplayd.server.process.hypercorn_fixes import UnsupportedHypercorn
from tests.daemon_process import daemon_environment

ROOT = Path(__file__).resolve().parents[2]


def _patched() -> list[Any]:
    """Every attribute ``install`` sets, as it is now."""
    return [
        tcp_server.TCPServer.run,
        ws_stream.WSStream._handle_events,
        ws_stream.WSStream._send_pings,
        ws_stream.WSStream.handle,
        ws_stream.WebsocketBuffer.extend,
    ]


@pytest.mark.parametrize("version", ["0.18.0", "0.18.7", "0.18.1.dev0"])
def test_a_checked_release_is_accepted(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(hypercorn_fixes, "_installed_version", lambda: version)
    hypercorn_fixes.check_version()


@pytest.mark.parametrize("version", ["0.17.3", "0.19.0", "0.19.0rc1", "1.18.0", "unknown"])
def test_an_unchecked_release_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(hypercorn_fixes, "_installed_version", lambda: version)
    with pytest.raises(UnsupportedHypercorn) as refused:
        hypercorn_fixes.check_version()
    message = str(refused.value)
    assert "\n" not in message
    assert f"hypercorn {version} is installed" in message
    assert "hypercorn>=0.18,<0.19" in message


def test_a_refused_release_is_left_unpatched(monkeypatch: pytest.MonkeyPatch) -> None:
    def original_extend(self: Any, event: Any) -> None:
        raise AssertionError("never called")

    monkeypatch.setattr(ws_stream.WebsocketBuffer, "extend", original_extend)
    monkeypatch.setattr(hypercorn_fixes, "_installed_version", lambda: "0.19.0")
    with pytest.raises(UnsupportedHypercorn):
        hypercorn_fixes.install()
    assert ws_stream.WebsocketBuffer.extend is original_extend


def test_install_is_idempotent() -> None:
    hypercorn_fixes.install()
    once = _patched()
    hypercorn_fixes.install()
    assert _patched() == once  # the wrappers are not wrapped again
    assert getattr(tcp_server.TCPServer.run, "_syncplayd_fixed", False)
    assert getattr(ws_stream.WSStream.handle, "_syncplayd_fixed", False)
    assert ws_stream.WSStream._handle_events is hypercorn_fixes._handle_events


def test_pyproject_declares_the_checked_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = [dep for dep in project["dependencies"] if dep.startswith("hypercorn")]
    assert bounds == ["hypercorn" + hypercorn_fixes.SUPPORTED_SPEC]


class _Stop(Exception):
    pass


async def test_the_daemon_installs_the_fixes_before_anything_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def install() -> None:
        calls.append("install")
        raise _Stop

    monkeypatch.setattr(hypercorn_fixes, "install", install)
    settings = load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path / "state")})
    with pytest.raises(_Stop):
        await daemon.run(settings)
    assert calls == ["install"]
    assert not (tmp_path / "state").exists()  # no secret generated, no database opened


def test_syncplayd_refuses_to_start_on_an_unchecked_hypercorn(tmp_path: Path) -> None:
    # A real process: the version lookup is faked before the command runs.
    script = (
        "from importlib import metadata\n"
        "real = metadata.version\n"
        "metadata.version = lambda name: '0.19.0' if name == 'hypercorn' else real(name)\n"
        "from syncplayd.cli.daemon import main\n"
        "main(prog_name='syncplayd')\n"
    )
    env = daemon_environment(None, tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "cannot start" in line]
    assert "hypercorn 0.19.0 is installed" in line and "hypercorn>=0.18,<0.19" in line
