"""Keep-alive connections stay usable whatever the handler does with the body.

Regression: hypercorn stalled a connection when the answer was complete before
the request body arrived (a POST /leave with a body the handler ignores); the
next request on that connection was never answered.
"""

from __future__ import annotations

import select
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import h11

from syncplayd.identity import encode_token
from tests.daemon_process import SECRET, DaemonProcess, new_user


def _response(sock: socket.socket, conn: h11.Connection) -> int:
    """Read one whole response and make the connection ready for the next request."""
    status = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.EndOfMessage):
            conn.start_next_cycle()
            return status


def test_body_sent_after_headers_keeps_connection_usable(daemon: DaemonProcess) -> None:
    url = urlsplit(daemon.base_url)
    token = encode_token(new_user("k"), SECRET, ttl=timedelta(minutes=5))
    body = b'{"ignored": true}'
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        for path in ("/api/v1/syncplay/rooms/00000000-0000-0000-0000-000000000000/leave", "/nope"):
            conn = h11.Connection(h11.CLIENT)
            head = conn.send(
                h11.Request(
                    method="POST",
                    target=path,
                    headers=[
                        ("Host", "x"),
                        ("Authorization", f"Bearer {token}"),
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                    ],
                )
            )
            sock.sendall(head or b"")
            # The server must not answer before the body is in: an answer now is
            # what used to leave the connection stalled. (A bounded look for the
            # absence of data, not a wait for something to happen.)
            readable, _, _ = select.select([sock], [], [], 0.3)
            assert not readable, "answered before the request body arrived"
            sock.sendall(
                (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            assert _response(sock, conn) == 404
            follow = conn.send(
                h11.Request(method="GET", target="/healthz", headers=[("Host", "x")])
            )
            sock.sendall((follow or b"") + (conn.send(h11.EndOfMessage()) or b""))
            assert _response(sock, conn) == 200
