"""No request, however malformed, gets a 5xx or a traceback from the daemon.

Hypothesis draws methods, paths (valid templates with hostile ids), query
strings, headers and bodies; every answer must be below 500, and answers to
documented operations must match the contract.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon_process import DaemonProcess, new_user
from tests.openapi_check import assert_response_conforms
from tests.server.api_client import Api

TEMPLATES = [
    ("GET", "/rooms"),
    ("POST", "/rooms"),
    ("GET", "/rooms/{room_id}"),
    ("PUT", "/rooms/{room_id}"),
    ("DELETE", "/rooms/{room_id}"),
    ("POST", "/rooms/{room_id}/join"),
    ("POST", "/rooms/{room_id}/leave"),
    ("GET", "/rooms/{room_id}/participants"),
    ("POST", "/rooms/{room_id}/chat"),
    ("GET", "/rooms/{room_id}/chat"),
    ("POST", "/rooms/{room_id}/invitations"),
    ("GET", "/invitations/{code}"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "name",
        "content_type",
        "content_id",
        "is_public",
        "password",
        "max_participants",
        "invitation_code",
        "message",
        "invited_user_id",
        "expires_in_hours",
        "max_uses",
    ]
)
bodies = st.one_of(
    st.dictionaries(field_names, json_values, max_size=6).map(lambda d: ("json", d)),
    json_values.map(lambda v: ("json", v)),
    st.binary(max_size=200).map(lambda b: ("raw", b)),
    st.sampled_from(
        [
            b'{"name": NaN}',
            b'{"max_participants": Infinity}',
            b'{"name": "a"',
            b"[" * 5000,
            b'{"max_participants": 1e400}',
            rb'{"name": "\ud800"}',
            b"\x00" * 10,
        ]
    ).map(lambda b: ("raw", b)),
)
path_ids = st.one_of(
    st.uuids().map(str),
    # "." and ".." are dot segments: the client resolves them away before sending.
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
        min_size=1,
        max_size=40,
    ).filter(lambda text: text not in (".", "..")),
)
queries = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "offset",
            "public",
            "mine",
            "active",
            "content_type",
            "content_id",
            "purge",
            "connected",
        ]
    ),
    st.text(max_size=20) | st.integers(min_value=-(10**20), max_value=10**20).map(str),
    max_size=4,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.sampled_from(TEMPLATES),
    use_real_room=st.booleans(),
    path_id=path_ids,
    query=queries,
    body=bodies,
)
def test_random_requests_never_cause_server_errors(
    daemon: DaemonProcess,
    op: tuple[str, str],
    use_real_room: bool,
    path_id: str,
    query: dict[str, str],
    body: tuple[str, Any],
) -> None:
    method, template = op
    caller = _caller(daemon)
    hostile = quote(path_id, safe="")
    room_id = _room(daemon, caller) if use_real_room else hostile
    url = "/api/v1/syncplay" + template.format(room_id=room_id, code=hostile)
    kind, payload = body
    kwargs: dict[str, Any] = {"params": query}
    if method in ("POST", "PUT"):
        if kind == "json":
            kwargs["json"] = payload
        else:
            kwargs["content"] = payload
            kwargs["headers"] = {"Content-Type": "application/json"}
    response = caller.http.request(method, url, **kwargs)
    assert response.status_code < 500, response.text
    assert_response_conforms(
        method,
        template,
        response.status_code,
        response.content or None,
        response.headers.get("content-type"),
    )


_cache: dict[str, Any] = {}


def _caller(daemon: DaemonProcess) -> Api:
    if "caller" not in _cache or _cache["daemon"] is not daemon:
        _cache.clear()
        _cache.update(daemon=daemon, caller=Api(daemon, new_user("fuzzer")))
    caller: Api = _cache["caller"]
    return caller


def _room(daemon: DaemonProcess, caller: Api) -> str:
    if "room" not in _cache:
        _cache["room"] = caller.create_room(is_public=True, content_id=str(uuid4()))["id"]
    room_id: str = _cache["room"]
    return room_id
