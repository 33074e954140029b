"""The watch page at ``/syncplay/``: static files, its settings and the demo mode.

Everything here is public and holds no secret: the page gets its identity from a
token the media server put in the link (``#token=``), from a trusted proxy, or,
in demo mode only, from a guest token minted below.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Final
from urllib.parse import quote

import msgspec
from quart import Blueprint, Response, current_app, redirect, request, send_file
from werkzeug.wrappers.response import Response as WerkzeugResponse

from syncplayd.config import WebSettings
from syncplayd.core.protocol import PROTOCOL_VERSION
from syncplayd.identity import MAX_NAME_LENGTH, Principal, encode_token
from syncplayd.server.http.problems import json_response, problem
from syncplayd.server.http.state import AppState

WEB_ROOT: Final = Path(__file__).resolve().parents[2] / "web"
DEMO_FOLDER: Final = WEB_ROOT / "demo"
DEMO_VIDEO: Final = DEMO_FOLDER / "demo.webm"
# Relative to the page, so that it also works under a reverse proxy's path prefix.
DEMO_MEDIA_PATH: Final = "demo/demo.webm"
# The queue of a demo room started from the page: the one-minute demo video, then two
# 20-s episodes (demo/make-demo-video.sh), so that the end of an item and the next can be
# tried without waiting long. Their lengths are left to the players, which report them.
_EPISODES: Final = ("demo-1.webm", "demo-2.webm")
DEMO_QUEUE: Final = (
    {"content_type": "url", "content_id": DEMO_MEDIA_PATH, "title": "Demo film"},
    *(
        {"content_type": "url", "content_id": f"demo/{name}", "title": f"Episode {number}"}
        for number, name in enumerate(_EPISODES, start=1)
    ),
)
# Only these files of the demo folder are served (not the script that makes them).
_DEMO_FILES: Final = frozenset({DEMO_VIDEO.name, *_EPISODES})

# The page's own files: the page directory first, then the library beside it.
_SEARCH_PATH: Final = (WEB_ROOT / "watch", WEB_ROOT)
# Bare media types: Werkzeug appends "; charset=utf-8" itself to text types (text/*,
# *+xml), so a charset written here would be sent twice.
_CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}
# A plain file name: no folders, no leading dot, so nothing outside WEB_ROOT is reachable.
_FILE_NAME: Final = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")

# Media may come from the media server on another origin, so media-src is open;
# scripts and styles come only from here (no inline code), and the page may be
# framed only by its own origin.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src * blob: data:; connect-src 'self' ws: wss:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Invitation codes travel in the query string: never hand them to media hosts.
    "Referrer-Policy": "no-referrer",
    # A new release must reach browsers at once: revalidate every time (ETags make it cheap).
    "Cache-Control": "no-cache",
}


# -- where the page may fetch a room's media --------------------------------------------------
# A room's content id comes from whoever created the room, and every member's browser
# fetches the URL made from it. Unless ``web.allow_any_media_url`` opens it, that URL
# must stay under the template's base: a lone ``{content_id}`` must be a path on the
# page's own origin (not ``https://elsewhere/``, not ``//elsewhere``), and a value put
# into a template must not climb out of its path as a ``..`` segment. The
# page checks the URL it builds (``watch-util.js``, which knows its origin); the
# server refuses what it can tell without knowing it, when a room is created or changed.
_LONE_TEMPLATE: Final = "{content_id}"
_PLACEHOLDER: Final = re.compile(r"\{(content_type|content_id)\}")
# Another origin: an http(s) URL, or a scheme-relative one (browsers read \ as /).
_OTHER_ORIGIN: Final = re.compile(r"(?i)[\x00-\x20]*(https?:|[/\\]{2})")
# What encodeURIComponent leaves as it is, as the page encodes values.
_URI_COMPONENT_SAFE: Final = "-_.!~*'()"


def media_url_refusal(
    settings: WebSettings, content_type: str | None, content_id: str | None
) -> tuple[str, str] | None:
    """``(field, reason)`` if the page would refuse to load the room's media, else ``None``.

    ``None`` for a value not given (an update that keeps it): the other one is checked
    with a harmless stand-in.
    """
    if not settings.enabled or settings.allow_any_media_url:
        return None
    template = settings.media_url_template
    if template.strip() == _LONE_TEMPLATE:
        if content_id is not None and _OTHER_ORIGIN.match(content_id):
            return "content_id", "must be a path on this server, not a link to another host"
        return None
    values = {"content_type": content_type, "content_id": content_id}
    path = re.split(r"[?#]", template, maxsplit=1)[0]
    for segment in re.split(r"[/\\]", path):
        names = _PLACEHOLDER.findall(segment)
        given = [name for name in names if values[name] is not None]
        if not given:
            continue
        filled = _PLACEHOLDER.sub(
            lambda m: quote(values[m[1]] or "x", safe=_URI_COMPONENT_SAFE), segment
        )
        if filled.lower().replace("%2e", ".") == "..":
            return given[-1], "must not be .. (it would leave the media path)"
    return None


class GuestBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str


web = Blueprint("web", __name__, url_prefix="/syncplay")


def _state() -> AppState:
    state: AppState = current_app.extensions["syncplayd"]
    return state


def _find(name: str) -> Path | None:
    if not _FILE_NAME.match(name) or Path(name).suffix not in _CONTENT_TYPES:
        return None
    for folder in _SEARCH_PATH:
        path = folder / name
        if path.is_file():
            return path
    return None


async def _static(path: Path) -> Response:
    response = await send_file(path, mimetype=_CONTENT_TYPES[path.suffix], conditional=True)
    response.headers.update(_PAGE_HEADERS)
    return response


@web.get("")
async def page_without_slash() -> WerkzeugResponse:
    # Relative URLs in the page resolve against /syncplay/, not /. The target is
    # relative too (to /syncplay it means /syncplay/), for proxies that add a prefix.
    return redirect("syncplay/", 308)


@web.get("/")
async def page() -> Response:
    return await _static(WEB_ROOT / "watch" / "index.html")


@web.get("/<name>")
async def static_file(name: str) -> Response:
    path = _find(name)
    if path is None:
        return problem(404, "not-found", "no such file")
    return await _static(path)


@web.get("/config.json")
async def page_config() -> Response:
    settings = _state().settings
    body = {
        "protocol": PROTOCOL_VERSION,
        "media_url_template": settings.web.media_url_template,
        "allow_any_media_url": settings.web.allow_any_media_url,
        "demo": settings.web.demo,
        "demo_media_url": DEMO_MEDIA_PATH if settings.web.demo else None,
        "demo_queue": list(DEMO_QUEUE) if settings.web.demo else [],
        "chat_enabled": settings.syncplay.chat.enabled,
        "max_chat_length": settings.syncplay.chat.max_message_length,
    }
    return json_response(body, headers={"Cache-Control": "no-cache"})


@web.get("/demo/<name>")
async def demo_video(name: str) -> Response:
    if not _state().settings.web.demo:
        return problem(404, "not-found", "the demo mode is off")
    if name not in _DEMO_FILES:
        return problem(404, "not-found", "no such demo video")
    response = await send_file(DEMO_FOLDER / name, mimetype="video/webm", conditional=True)
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@web.post("/demo/guest")
async def demo_guest() -> Response:
    state = _state()
    if not state.settings.web.demo:
        return problem(404, "not-found", "the demo mode is off")
    try:
        body = msgspec.json.decode(await request.get_data(), type=GuestBody)
    except msgspec.ValidationError as exc:
        return problem(422, "invalid", f"invalid guest request: {exc}")
    except msgspec.DecodeError:
        return problem(400, "bad-request", "the body must be a JSON object")
    except UnicodeDecodeError:
        # What msgspec raises for bytes that are not UTF-8 inside a string.
        return problem(400, "bad-request", "the body is not valid UTF-8")
    name = body.name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or re.search(r"[\x00-\x1f\x7f]", name):
        return problem(422, "invalid", f"name must be 1 to {MAX_NAME_LENGTH} printable characters")
    principal = Principal(user_id=uuid.uuid4(), name=name)
    ttl = timedelta(hours=state.settings.web.guest_token_hours)
    now = state.clock.wall()
    token = encode_token(
        principal,
        state.jwt_secret,
        ttl=ttl,
        now=now,
        audience=state.settings.auth.jwt_audience,
        issuer=state.settings.auth.jwt_issuer,
    )
    body_out = {
        "token": token,
        "user_id": str(principal.user_id),
        "user_name": name,
        "expires_at": (now + ttl).isoformat().replace("+00:00", "Z"),
    }
    return json_response(body_out, 201, headers={"Cache-Control": "no-store"})
