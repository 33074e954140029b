"""A database outage is reported, not crashed on: /readyz says so, the API answers 503."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.daemon_process import new_user, run_daemon
from tests.server.api_client import Api
from tests.server.conftest import create_postgres_database, to_url


@pytest.mark.postgres
def test_readyz_and_api_report_a_lost_database(postgres_server_url: str, tmp_path: Path) -> None:
    conninfo = create_postgres_database(postgres_server_url)
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    with run_daemon(to_url(conninfo), tmp_path / "state") as daemon:
        user = Api(daemon, new_user("u"))
        room = user.create_room()
        # Take the database away under the running daemon.
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        ready = user.call("GET", "/readyz", 503)
        assert ready.json()["status"] == "unavailable"
        user.call("GET", "/healthz", 200)  # alive, just not ready
        user.problem("GET", "/rooms/{room_id}", 503, "unavailable", room_id=room["id"])
        assert daemon.process.poll() is None  # still running
        assert not any("Traceback" in line for line in daemon.log_lines)
