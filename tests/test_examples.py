"""The files in ``examples/``, run as the README runs them, against a real daemon.

The daemon starts as ``make run`` starts it (demo mode, a secret it generates into
its state folder); tokens come from ``syncplayctl token create`` reading that
folder; the room from ``examples/create_room.sh`` (curl); the sync from
``examples/try_sync.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urljoin

import httpx
import pytest

from tests.daemon_process import DaemonProcess, run_daemon

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
README = ROOT / "README.md"
DEPLOYMENT = ROOT / "docs" / "deployment.md"
# The multi-node nginx configuration: tests/e2e/test_nginx_cluster.py runs the file.
NGINX_CLUSTER = ROOT / "docs" / "examples" / "nginx-cluster.conf"
# The README's two users.
ADA = "6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11"
BOB = "2b9e7d14-8a55-4c1f-a3e0-5c7b9d2f4e86"
# The README's output line: "room 11.851  ada 11.851  bob 11.851".
_POSITIONS = re.compile(r"^room (?P<room>[\d.]+)\s+ada (?P<ada>[\d.]+)\s+bob (?P<bob>[\d.]+)$")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def demo_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProcess, dict[str, str]]]:
    """A daemon as ``make run`` starts it, and the environment the README's commands see."""
    state_dir = tmp_path / "state"
    with run_daemon(None, state_dir, {"SYNCPLAY_WEB_DEMO": "true"}, secret=None) as daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCPLAY_")}
        env["SYNCPLAY_STATE_DIR"] = str(state_dir)
        env["SYNCPLAYD_URL"] = daemon.base_url
        yield daemon, env


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr  # no warning either
    return result.stdout


def _token(env: dict[str, str], user: str, name: str) -> str:
    syncplayctl = [sys.executable, "-m", "syncplayd.cli.ctl"]
    return _run([*syncplayctl, "token", "create", "--user", user, "--name", name], env).strip()


def _create_room(env: dict[str, str], token: str) -> str:
    if shutil.which("curl") is None:
        _unavailable("examples/create_room.sh needs curl (apt-get install curl)")
    return _run([str(EXAMPLES / "create_room.sh"), token], env).strip()


def test_try_sync_starts_both_players_together(
    demo_daemon: tuple[DaemonProcess, dict[str, str]],
) -> None:
    daemon, env = demo_daemon
    env["ADA"] = _token(env, ADA, "Ada")
    env["BOB"] = _token(env, BOB, "Bob")
    env["ROOM"] = _create_room(env, env["ADA"])

    lines = _run([sys.executable, str(EXAMPLES / "try_sync.py")], env).splitlines()

    assert lines[0] == "in the room: ['Ada', 'Bob']"
    assert lines[1].startswith("both start at server time ")
    positions = _POSITIONS.match(lines[2])
    assert positions is not None, lines
    room, ada, bob = (float(positions[name]) for name in ("room", "ada", "bob"))
    # Played from 10 s for the two seconds the example waits, and the players agree.
    assert 11.5 < room < 13.0
    assert abs(ada - room) < 0.1 and abs(bob - room) < 0.1
    # Both left: the room is empty again.
    room_body = daemon.client(token=env["ADA"]).get(f"/api/v1/syncplay/rooms/{env['ROOM']}")
    assert room_body.json()["participant_count"] == 0


def test_the_example_room_plays_on_the_watch_page(
    demo_daemon: tuple[DaemonProcess, dict[str, str]],
) -> None:
    """The room the README creates names media the demo daemon serves."""
    daemon, env = demo_daemon
    token = _token(env, ADA, "Ada")
    room_id = _create_room(env, token)
    room = daemon.client(token=token).get(f"/api/v1/syncplay/rooms/{room_id}").json()
    config = daemon.client().get("/syncplay/config.json").json()
    # As the page makes it: the template filled in, relative to the page's address.
    assert config["media_url_template"] == "{content_id}"
    media_url = urljoin(f"{daemon.base_url}/syncplay/", room["content_id"])
    response = httpx.get(media_url, headers={"Range": "bytes=0-99"}, timeout=10.0)
    assert response.status_code in (200, 206), media_url
    assert response.headers["Content-Type"] == "video/webm"


def test_create_room_reports_a_refusal(
    demo_daemon: tuple[DaemonProcess, dict[str, str]],
) -> None:
    _, env = demo_daemon
    if shutil.which("curl") is None:
        _unavailable("examples/create_room.sh needs curl (apt-get install curl)")
    result = subprocess.run(
        [str(EXAMPLES / "create_room.sh"), "not-a-token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the daemon refused" in result.stderr and '"status":401' in result.stderr


def test_the_readme_points_at_every_example() -> None:
    readme = README.read_text(encoding="utf-8")
    for example in sorted(EXAMPLES.iterdir()):
        assert f"examples/{example.name}" in readme, example.name


def test_the_guide_shows_the_tested_cluster_nginx_configuration() -> None:
    """The operator copies the guide's block; the tests run the file: they must be one text."""
    guide = DEPLOYMENT.read_text(encoding="utf-8")
    marker = "<!-- docs/examples/nginx-cluster.conf, shown unchanged"
    assert guide.count(marker) == 1
    block = re.compile(r"```nginx\n(.*?)```", re.S).search(guide, guide.index(marker))
    assert block is not None, f"no nginx block after the marker in {DEPLOYMENT}"
    assert block[1] == NGINX_CLUSTER.read_text(encoding="utf-8")
