"""Guessing a room's password on several nodes spends one budget, not one per node.

Two real daemons in multi-node mode on one PostgreSQL. nginx sends REST calls that name no
room (``?room=``) to any node, so a guesser's requests land on all of them; the nodes count
failed attempts in the database they share (``SharedAttempts``), and the budget of
``syncplay.rooms.failed_join_attempts`` holds for the cluster as it does for one daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.conftest import E2E_ENV
from tests.e2e.desktop import free_port
from tests.e2e.raw import new_room, rest
from tests.server.conftest import create_postgres_database, to_url

pytestmark = [pytest.mark.postgres]

BUDGET = 4
ENV = E2E_ENV | {
    "SYNCPLAY_CLUSTER_ENABLED": "true",
    "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": str(BUDGET),
}


@pytest.fixture
def nodes(postgres_server_url: str, tmp_path: Path) -> Iterator[tuple[DaemonProcess, ...]]:
    """Nodes ``a`` and ``b`` on one fresh database."""
    database = to_url(create_postgres_database(postgres_server_url))
    with ExitStack() as stack:
        yield tuple(
            stack.enter_context(
                run_daemon(
                    database,
                    tmp_path / name,
                    ENV
                    | {
                        "SYNCPLAY_LISTEN": f"127.0.0.1:{free_port()}",
                        "SYNCPLAY_CLUSTER_NODE_ID": name,
                    },
                )
            )
            for name in ("a", "b")
        )


async def test_password_guesses_spread_over_the_nodes_spend_one_budget(
    nodes: tuple[DaemonProcess, ...],
) -> None:
    owner, guesser = new_user("Ada"), new_user("Mallory")
    room_id = await new_room(nodes[0], owner, is_public=True, password="the right one")

    def join(node: DaemonProcess, password: str) -> tuple[int, str, str | None]:
        answer = rest(node, guesser).post(
            f"/api/v1/syncplay/rooms/{room_id}/join", json={"password": password}
        )
        return answer.status_code, answer.json().get("code", ""), answer.headers.get("Retry-After")

    def guess_everywhere() -> list[tuple[int, str, str | None]]:
        wrong = [join(nodes[n % 2], f"guess {n}") for n in range(BUDGET)]
        return wrong + [join(node, "the right one") for node in nodes]

    answers = await trio.to_thread.run_sync(guess_everywhere)
    # Each node alone would have allowed BUDGET: two nodes, two guesses each, and the
    # budget is spent on both.
    assert answers[:BUDGET] == [(403, "wrong-password", None)] * BUDGET
    for status, code, retry_after in answers[BUDGET:]:
        assert (status, code) == (429, "too-many-attempts")
        assert retry_after is not None and 0 < int(retry_after) <= 300
    # Someone else, from the same (loopback) address, still has the address's budget.
    friend = new_user("Ben")
    welcome = await trio.to_thread.run_sync(
        lambda: rest(nodes[1], friend).post(
            f"/api/v1/syncplay/rooms/{room_id}/join", json={"password": "the right one"}
        )
    )
    assert welcome.status_code == 200, welcome.text
