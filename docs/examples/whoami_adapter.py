#!/usr/bin/env python3
"""Answer nginx's ``auth_request`` for syncplayd from a "who am I" endpoint.

An example to adapt, not part of syncplayd (standard library only, Python 3.11+).
docs/integration.md explains where it fits.

nginx's ``auth_request`` reads only the status and the headers of its check, and
syncplayd wants the user's id as a UUID in a header. Most "who am I" endpoints
answer with a JSON body (a media server's current-user call), and a login portal
names its users by login name, not by UUID. This adapter sits in between: for each
check nginx makes, it asks the endpoint with the browser's own credentials (the
headers named by ``--forward``), and answers

* ``200`` with ``X-User-Id`` (a UUID), ``X-User-Name`` and ``X-User-Admin``
  (``true`` or ``false``) when the endpoint knows the user;
* ``401`` when it answers ``401`` or ``403`` (nginx then refuses the request);
* ``502`` when it cannot be reached or answers something unusable (nginx answers
  ``500``: a broken check must not let anyone in).

A field is a dotted path into the JSON answer (``Policy.IsAdministrator``), or
``header:NAME`` for a header of the answer (login portals that answer with
headers). An id that is not a UUID is turned into one with
``uuid5(NAMESPACE_URL, ID_NAMESPACE + id)``, the same rule docs/api.md suggests
for minting tokens, so a user keeps one identity either way. Credentials and
answers are never logged.

Example (Jellyfin-style JSON; see docs/integration.md for where the credential
comes from)::

    python3 whoami_adapter.py --listen 127.0.0.1:8097 \\
        --whoami http://127.0.0.1:8096/Users/Me --forward Cookie \\
        --id Id --name Name --admin Policy.IsAdministrator
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("whoami-adapter")

#: What this adapter tells nginx (``auth_request_set $user_id $upstream_http_x_user_id``).
ID_HEADER, NAME_HEADER, ADMIN_HEADER = "X-User-Id", "X-User-Name", "X-User-Admin"


class Unusable(Exception):
    """The endpoint answered, but not with a user this adapter can name."""


def field(body: object, headers: Message, path: str) -> object:
    """The value at ``path`` (``a.b.c`` in the JSON body, or ``header:NAME``), or None."""
    if path.startswith("header:"):
        return headers.get(path.removeprefix("header:"))
    value = body
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def user_uuid(raw: object, namespace: str | None) -> uuid.UUID:
    """The user's UUID: ``raw`` itself if it is one, else derived under ``namespace``."""
    if raw is None or isinstance(raw, bool | dict | list) or str(raw).strip() == "":
        raise Unusable("the answer names no user id")
    text = str(raw).strip()
    try:
        return uuid.UUID(text)
    except ValueError:
        if namespace is None:
            raise Unusable("the user id is not a UUID: set --id-namespace") from None
        return uuid.uuid5(uuid.NAMESPACE_URL, namespace + text)


def header_text(value: str) -> str:
    """``value`` as http.server sends it: UTF-8 bytes on the wire, no line breaks."""
    clean = "".join(ch for ch in value if ch.isprintable())
    return clean.encode("utf-8").decode("latin-1")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is a login page: not logged in. Followed, it would answer 200 with HTML.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def make_handler(options: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    """The request handler: one check per request nginx sends."""

    class Check(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            extra: dict[str, str] = {}
            try:
                status, extra = 200, self._ask()
            except urllib.error.HTTPError as exc:
                exc.close()
                status = 401 if exc.code in (401, 403) or 300 <= exc.code < 400 else 502
                if status == 502:
                    log.warning("the who-am-I endpoint answered %s", exc.code)
            except (OSError, ValueError, Unusable) as exc:
                # OSError: unreachable or timed out; ValueError: not JSON.
                log.warning("cannot check a request: %s", exc)
                status = 502
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _ask(self) -> dict[str, str]:
            forwarded = {
                name: value for name in options.forward if (value := self.headers.get(name))
            }
            request = urllib.request.Request(  # noqa: S310 - the operator's URL
                options.whoami, headers={"Accept": "application/json", **forwarded}
            )
            with _OPENER.open(request, timeout=options.timeout) as answer:
                data = answer.read(1_000_000)
                headers = answer.headers
            paths = [options.id, options.name, options.admin]
            wants_body = any(p and not p.startswith("header:") for p in paths)
            body = json.loads(data) if wants_body else None
            user_id = user_uuid(field(body, headers, options.id), options.id_namespace)
            name = field(body, headers, options.name)
            admin = options.admin is not None and field(body, headers, options.admin) in (
                True,
                "true",
                "True",
            )
            return {
                ID_HEADER: str(user_id),
                NAME_HEADER: header_text(name if isinstance(name, str) else ""),
                ADMIN_HEADER: "true" if admin else "false",
            }

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per check would drown the log; problems are logged above

    return Check


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8097", help="IPv4 HOST:PORT (0: any port)")
    parser.add_argument("--whoami", required=True, help="the endpoint's URL")
    parser.add_argument(
        "--forward",
        action="append",
        help="a request header that carries the credential (repeatable; default: Cookie)",
    )
    parser.add_argument("--id", default="id", help="the user id's field (default: id)")
    parser.add_argument("--name", default="name", help="the display name's field")
    parser.add_argument("--admin", help="a field that is true for syncplayd administrators")
    parser.add_argument("--id-namespace", help="prefix for ids that are not UUIDs (uuid5)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    options = parser.parse_args(argv)
    options.forward = options.forward or ["Cookie"]
    return options


def main(argv: Sequence[str] | None = None) -> None:
    options = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    host, _, port = options.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), make_handler(options))
    print(f"whoami-adapter listening on http://{host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
