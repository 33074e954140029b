"""Which nodes a node takes for newcomers to rebalance paused rooms towards (``newcomers``)."""

from __future__ import annotations

from datetime import UTC, datetime

from syncplayd.server.live.cluster import NODE_STALE_SECONDS, STARTUP_GRACE_SECONDS, newcomers
from syncplayd.storage.records import NodeRecord

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()


def record(node_id: str, started: float, heartbeat: float) -> NodeRecord:
    return NodeRecord(
        node_id=node_id,
        url=f"http://{node_id}",
        pid=1,
        started_at=datetime.fromtimestamp(started, UTC),
        heartbeat_at=datetime.fromtimestamp(heartbeat, UTC),
        syncplay_bridge=None,
    )


def test_nodes_starting_with_the_deployment_are_peers_not_newcomers() -> None:
    now = T0 + 60
    nodes = [record(name, T0 + i * 3, now) for i, name in enumerate(["a", "b", "c"])]
    assert newcomers(nodes, me="a", known={"a"}, started=T0, now=now) == set()


def test_a_node_started_after_the_deployment_is_a_newcomer_once() -> None:
    now = T0 + 600
    nodes = [record("a", T0, now), record("b", T0 + 1, now), record("d", T0 + 590, now)]
    assert newcomers(nodes, me="a", known={"a", "b"}, started=T0, now=now) == {"d"}
    # Seen once, it is a peer from then on.
    assert newcomers(nodes, me="a", known={"a", "b", "d"}, started=T0, now=now) == set()


def test_a_node_restarted_into_the_cluster_takes_the_node_added_after_it_for_a_newcomer() -> None:
    # "c" restarted at T0 + 500 and "d" was added five seconds later: "c" counts from the
    # deployment's start (the running nodes' earliest), not from its own.
    now = T0 + 520
    restarted = T0 + 500
    nodes = [
        record("a", T0, now),
        record("b", T0 + 1, now),
        record("c", restarted, now),
        record("d", restarted + 5, now),
    ]
    assert restarted + 5 < restarted + STARTUP_GRACE_SECONDS
    assert newcomers(nodes, me="c", known={"a", "b", "c"}, started=restarted, now=now) == {"d"}


def test_a_gone_node_neither_is_a_newcomer_nor_dates_the_deployment() -> None:
    now = T0 + 600
    stale = now - NODE_STALE_SECONDS - 1
    # A dead node's row from long ago does not make the nodes starting now newcomers.
    nodes = [
        record("old", T0 - 3600, stale),
        record("a", T0 + 590, now),
        record("b", T0 + 595, now),
    ]
    assert newcomers(nodes, me="a", known={"a"}, started=T0 + 590, now=now) == set()
    # And a newcomer that has gone again is no reason to rebalance.
    nodes = [record("a", T0, now), record("d", T0 + 500, stale)]
    assert newcomers(nodes, me="a", known={"a"}, started=T0, now=now) == set()
