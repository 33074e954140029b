"""Where a node's Syncplay listener is reached by the other nodes (``relay_address``).

What a node registers in ``nodes.syncplay_bridge``: a wildcard bind is no address to
connect to, so the host the other nodes already use for the node (``cluster.url``)
stands in for it.
"""

from __future__ import annotations

import pytest

from syncplayd.server.live.syncplay_bridge import relay_address


@pytest.mark.parametrize(
    ("host", "port", "url", "expected"),
    [
        ("127.0.0.1", 8991, "http://127.0.0.1:8751", "127.0.0.1:8991"),
        ("10.0.0.5", 8999, "http://node2.lan:8750", "10.0.0.5:8999"),
        ("0.0.0.0", 8999, "http://node2.lan:8750", "node2.lan:8999"),  # noqa: S104
        ("::", 8999, "http://[fd00::2]:8750", "[fd00::2]:8999"),
        ("::1", 8999, "http://[::1]:8750", "[::1]:8999"),
        ("::", 8999, "http://10.0.0.2:8750", "10.0.0.2:8999"),
        # cluster.url may leave out the port (config: http(s)://HOST[:PORT]).
        ("::", 8999, "https://[fd00::2]", "[fd00::2]:8999"),
        ("0.0.0.0", 8999, "http://node2.lan", "node2.lan:8999"),  # noqa: S104
        ("0.0.0.0", 8999, "http://node2.lan/", "node2.lan:8999"),  # noqa: S104
    ],
)
def test_the_address_other_nodes_connect_to(host: str, port: int, url: str, expected: str) -> None:
    assert relay_address(host, port, url) == expected
