"""A real nginx for the proxy tests, started as a process on a free loopback port.

The tests write what goes in the ``http`` block (docs/deployment.md's and
docs/integration.md's blocks); this module puts it in a frame that keeps every
file nginx writes in the test's folder, finds nginx, starts it and stops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

FRAME = """
daemon off;
master_process {master};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http}
}}
"""


def frame(folder: Path, http: str, *, master: bool = False) -> str:
    """The whole nginx.conf around an http block's content."""
    return FRAME.format(tmp=folder, http=http, master="on" if master else "off")


def require_nginx() -> None:
    """Skip without nginx, except in CI, where it is installed and its absence is a failure."""
    if not os.path.exists(NGINX):
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (.ci/run installs the Debian package)")
        pytest.skip("nginx is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def run_nginx(folder: Path, http: Callable[[int], str], *, master: bool = False) -> Iterator[str]:
    """Run nginx with ``http(port)`` in its http block; yields ``http://127.0.0.1:PORT``.

    nginx writes its files (and its error log) into ``folder``; an ``[emerg]`` in the
    log fails the test. ``master``: a master process and a worker, as in production, so
    that ``SIGHUP`` to the pid in ``folder/nginx.pid`` reloads the configuration
    (:func:`frame` writes a new one).
    """
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(frame(folder, http(port), master=master))
    nginx = subprocess.Popen(
        [NGINX, "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # nginx gives no readiness signal; poll its port, bounded in count and time.
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except ConnectionRefusedError:
                assert nginx.poll() is None, (folder / "error.log").read_text()
                time.sleep(0.02)
        else:
            pytest.fail("nginx did not listen within 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    assert "[emerg]" not in (folder / "error.log").read_text()
