"""nginx in front of several nodes, configured by docs/examples/nginx-cluster.conf as it is.

The example is what the guide shows (tests/test_examples.py keeps the two equal); here only
its addresses change: the upstream's ``server`` lines become the test's nodes, with the
example's parameters, and the ``location`` blocks go into a server on a free port. Anything
else the example says, nginx runs as written.

``StandIn`` is a node for routing tests: a few lines of trio that answer every request with
their own name, the request and the headers that reached them, and can be stopped (the port
then refuses connections, as a dead daemon's does) and started again on the same port.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from tests.e2e.nginx import run_nginx

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "nginx-cluster.conf"
HTTP_MARK = "# --- http block ---"
SERVER_MARK = "# --- server block of the media server's site ---"
# "    server 127.0.0.1:8751 max_fails=0;" inside the upstream block.
_SERVER_LINE = re.compile(r"^(?P<indent>[ ]+)server (?P<address>\S+)(?P<params>(?: \S+)*);\n", re.M)


def example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def cluster_http_block(port: int, upstreams: Sequence[str]) -> str:
    """The example's http part and its locations in a server on ``port``, for nginx.conf.

    Args:
        port: Where nginx listens (127.0.0.1).
        upstreams: The nodes, ``HOST:PORT`` each, in place of the example's.
    """
    text = example()
    assert text.count(HTTP_MARK) == 1 and text.count(SERVER_MARK) == 1, "the example moved"
    http_part, _, server_part = text.partition(SERVER_MARK)
    http_part = http_part.partition(HTTP_MARK)[2]
    lines = list(_SERVER_LINE.finditer(http_part))
    assert len(lines) >= 2, "the example's upstream should list several nodes"
    params = {line["params"] for line in lines}
    assert len(params) == 1, f"every node should have the same parameters: {params}"
    indent, param = lines[0]["indent"], params.pop()
    nodes = "".join(f"{indent}server {address}{param};\n" for address in upstreams)
    http_part = http_part[: lines[0].start()] + nodes + http_part[lines[-1].end() :]
    assert "location" in server_part and "location" not in http_part
    server = f"    server {{\n        listen 127.0.0.1:{port};\n"
    server += "".join(f"        {line}\n" if line else "\n" for line in server_part.splitlines())
    server += "    }\n"
    return "".join(f"    {line}\n" if line else "\n" for line in http_part.splitlines()) + server


@contextmanager
def run_nginx_cluster(
    folder: Path, upstreams: Sequence[str], *, master: bool = False
) -> Iterator[str]:
    """nginx with the example's configuration in front of ``upstreams``; yields its base URL.

    ``master``: reloadable (see ``run_nginx``)."""
    with run_nginx(folder, lambda port: cluster_http_block(port, upstreams), master=master) as base:
        yield base


@dataclass
class Request:
    """What reached a stand-in: the method, the path with its query, the headers."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass
class StandIn:
    """A node for routing tests: answers ``{"node": name, ...}`` to every request.

    ``status`` is what it answers with (set 502 to play a failing node); ``requests``
    records every request it got, in order.
    """

    name: str
    status: int = 200
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen (on the same port as before, after a stop) until ``stop``."""
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
                self.port = listeners[0].socket.getsockname()[1]
                task_status.started()
                await trio.serve_listeners(self._answer, listeners)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Stop listening; returns once the port refuses connections."""
        assert self._scope is not None
        self._scope.cancel()
        await self._stopped.wait()

    async def _answer(self, stream: trio.SocketStream) -> None:
        # A connection nginx drops halfway must not end the server (serve_listeners would
        # pass the error on): the stand-in stands for a daemon that keeps serving.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            async with stream:
                await self._answer_one(stream)

    async def _answer_one(self, stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(65536)
            if not chunk or len(head) > 65536:
                return
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        # Read the body nginx passes on, so that closing never resets the connection.
        while len(body) < int(headers.get("content-length", "0")):
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            body += chunk
        self.requests.append(Request(method, target, headers))
        content = json.dumps({"node": self.name, "target": target, "headers": headers}).encode()
        await stream.send_all(
            f"HTTP/1.1 {self.status} Stand-in\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\nConnection: close\r\n\r\n".encode()
            + content
        )
