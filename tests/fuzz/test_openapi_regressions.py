"""Plain tests for what the schemathesis run (test_openapi_schemathesis.py) found.

Each test pins one disagreement between the daemon and api/openapi/syncplay.yaml,
from both sides: what the daemon answers, and that the contract says the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from syncplayd.core.text import CHAT_CONTROL_CHARS, CONTROL_CHARS
from syncplayd.openapi import load_spec
from syncplayd.server.http import payloads
from syncplayd.service import ServiceError
from tests.daemon_process import DaemonProcess, new_user
from tests.openapi_check import assert_request_conforms, schema_validator
from tests.server.api_client import Api
from tests.server.conftest import BACKENDS, backend_daemon


@pytest.fixture(scope="module", params=BACKENDS)
def daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with backend_daemon(request, tmp_path_factory, "regressions") as process:
        yield process
        assert not any("Traceback" in line for line in process.log_lines)


def _valid(pointer: str, instance: object) -> bool:
    return bool(schema_validator(pointer).is_valid(instance))


# -- integral numbers for integer fields ------------------------------------------------
def test_integral_numbers_are_integers(daemon: DaemonProcess) -> None:
    """To JSON (Schema) 52.0 is the integer 52; msgspec's strict mode refused it with 422."""
    owner = Api(daemon, new_user("ints"))
    room = owner.create_room(max_participants=12.0)
    assert room["max_participants"] == 12
    updated = owner.call(
        "PUT", "/rooms/{room_id}", 200, json={"max_participants": 52.0}, room_id=room["id"]
    )
    assert updated.json()["max_participants"] == 52
    invitation = owner.call(
        "POST", "/rooms/{room_id}/invitations", 201, json={"max_uses": 3.0}, room_id=room["id"]
    )
    assert invitation.json()["max_uses"] == 3
    # A fraction is still not an integer.
    owner.problem(
        "PUT", "/rooms/{room_id}", 422, "validation-failed",
        json={"max_participants": 52.5}, room_id=room["id"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"max_uses": 5.0}', 5),
        (b'{"max_uses": -0.0}', "422"),  # 0: below the minimum of 1
        (b'{"max_uses": 5.5}', "422"),
        (b'{"max_uses": 1e300}', "422"),  # integral, but far beyond 2**53: left as a float
        (b'{"max_uses": 5.0, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "400"),
    ],
)
def test_decode_body_integral_floats(body: bytes, expected: int | str) -> None:
    if isinstance(expected, int):
        assert payloads.decode_body(body, payloads.InvitationBody).max_uses == expected
        return
    with pytest.raises(ServiceError) as caught:
        payloads.decode_body(body, payloads.InvitationBody)
    assert str(caught.value.status) == expected


# -- null where the contract's type has no null -----------------------------------------------
NULL_REFUSED = [
    ("/rooms/{room_id}/join", "JoinRoom", "password", "str"),
    ("/rooms/{room_id}/join", "JoinRoom", "invitation_code", "str"),
    ("/rooms/{room_id}/invitations", "CreateInvitation", "expires_in_hours", "float"),
]


@pytest.mark.parametrize(("template", "schema", "field", "type_name"), NULL_REFUSED)
def test_null_is_refused_by_both(
    daemon: DaemonProcess, template: str, schema: str, field: str, type_name: str
) -> None:
    """The daemon read null as "not given" (``X | None = None``); the contract refuses it."""
    assert not _valid(f"/components/schemas/{schema}", {field: None})
    owner = Api(daemon, new_user("nulls"))
    room = owner.create_room(is_public=True)
    problem = owner.problem(
        "POST", template, 422, "validation-failed", json={field: None}, room_id=room["id"]
    )
    assert problem["errors"] == [{"field": field, "message": f"Expected `{type_name}`, got `null`"}]
    # Absent is still "not given".
    owner.call("POST", template, 200 if schema == "JoinRoom" else 201, json={}, room_id=room["id"])


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        (payloads.JoinBody, "password"),
        (payloads.JoinBody, "invitation_code"),
        (payloads.InvitationBody, "expires_in_hours"),
    ],
)
def test_decode_body_refuses_null(kind: type[object], field: str) -> None:
    with pytest.raises(ServiceError) as caught:
        payloads.decode_body(b'{"%s": null}' % field.encode(), kind)
    assert (caught.value.status, caught.value.code) == (422, "validation-failed")
    assert [e.field for e in caught.value.errors or []] == [field]


def test_decode_body_absent_is_not_given() -> None:
    join = payloads.decode_body(b"", payloads.JoinBody)
    assert (join.password, join.invitation_code) == (None, None)
    join = payloads.decode_body(b'{"password": "p", "invitation_code": "C"}', payloads.JoinBody)
    assert (join.password, join.invitation_code) == ("p", "C")
    assert payloads.decode_body(b"{}", payloads.InvitationBody).expires_in_hours is None
    # An integral number takes the int-retry path of decode_body: the wire names still apply.
    given = payloads.decode_body(
        b'{"expires_in_hours": 2, "max_uses": 3.0}', payloads.InvitationBody
    )
    assert (given.expires_in_hours, given.max_uses) == (2, 3)


# -- an invitation expired on creation -------------------------------------------------------------
@pytest.mark.parametrize("hours", [1e-300, 1e-7, 0.0166])
def test_an_expiry_below_a_minute_is_refused_by_both(daemon: DaemonProcess, hours: float) -> None:
    """``1e-300`` hours was valid to both, and created an invitation expired on creation."""
    assert not _valid("/components/schemas/CreateInvitation", {"expires_in_hours": hours})
    owner = Api(daemon, new_user("brief"))
    room = owner.create_room()
    problem = owner.problem(
        "POST", "/rooms/{room_id}/invitations", 422, "validation-failed",
        json={"expires_in_hours": hours}, room_id=room["id"],
    )  # fmt: skip
    assert [e["field"] for e in problem["errors"]] == ["expires_in_hours"]


def test_a_one_minute_invitation_is_valid_to_both(daemon: DaemonProcess) -> None:
    minute = payloads.MIN_EXPIRY_HOURS
    assert _valid("/components/schemas/CreateInvitation", {"expires_in_hours": minute})
    owner = Api(daemon, new_user("minute"))
    room = owner.create_room()
    before = datetime.now(UTC)
    invitation = owner.call(
        "POST", "/rooms/{room_id}/invitations", 201,
        json={"expires_in_hours": minute}, room_id=room["id"],
    ).json()  # fmt: skip
    expires = datetime.fromisoformat(invitation["expires_at"])
    assert timedelta(seconds=59) < expires - before < timedelta(seconds=70)
    owner.call("GET", "/invitations/{code}", 200, code=invitation["code"])


# -- the YAML document --------------------------------------------------------------------
def test_openapi_yaml_parses_to_the_documented_schema(daemon: DaemonProcess) -> None:
    """The contract said the YAML body was a string; parsed, it is the document (an object)."""
    response = Api(daemon).call("GET", "/openapi.yaml", 200)
    document = yaml.safe_load(response.content)
    pointer = "/paths/~1openapi.yaml/get/responses/200/content/application~1yaml/schema"
    assert _valid(pointer, document)


# -- max_participants: null at create ---------------------------------------------------------
def test_create_room_with_null_max_participants_uses_the_default(daemon: DaemonProcess) -> None:
    """The daemon accepted null (as "the default"); the contract now says so."""
    body = {"name": "n", "content_type": "movie", "content_id": "1", "max_participants": None}
    assert_request_conforms("POST", "/rooms", body)
    room = Api(daemon, new_user("null-max")).call("POST", "/rooms", 201, json=body).json()
    assert room["max_participants"] == 50  # the configured default


# -- blank names and chat messages --------------------------------------------------------------
@pytest.mark.parametrize("blank", [" ", "\x1d", " \x1c\x85 ", "\u3000\t"])
def test_blank_names_and_messages_are_refused_by_both(daemon: DaemonProcess, blank: str) -> None:
    """Whitespace-only (Unicode's, control separators included) was valid to the contract."""
    owner = Api(daemon, new_user("blank"))
    body = {"name": blank, "content_type": "movie", "content_id": "1"}
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms", body)
    owner.problem("POST", "/rooms", 422, "validation-failed", json=body)
    room = owner.create_room()
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms/{room_id}/chat", {"message": blank})
    owner.problem(
        "POST", "/rooms/{room_id}/chat", 422, "validation-failed",
        json={"message": blank}, room_id=room["id"],
    )  # fmt: skip
    # Surrounding whitespace around a real character is fine for both, unless it is a
    # control character: refused in names, and in chat but for tab and newline.
    for path, padded, refused in [
        ("/rooms", body | {"name": blank + "x"}, CONTROL_CHARS),
        ("/rooms/{room_id}/chat", {"message": blank + "x"}, CHAT_CONTROL_CHARS),
    ]:
        if re.search(f"[{refused}]", blank):
            with pytest.raises(AssertionError):
                assert_request_conforms("POST", path, padded)
        else:
            assert_request_conforms("POST", path, padded)


# -- NUL characters --------------------------------------------------------------------------
def test_nul_in_an_invitation_code_is_refused_by_both(daemon: DaemonProcess) -> None:
    owner = Api(daemon, new_user("nul"))
    room = owner.create_room(is_public=True)
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms/{room_id}/join", {"invitation_code": "AB\x00C"})
    owner.problem(
        "POST", "/rooms/{room_id}/join", 422, "validation-failed",
        json={"invitation_code": "AB\x00C"}, room_id=room["id"],
    )  # fmt: skip


def _query_parameters() -> list[dict[str, Any]]:
    spec: dict[str, Any] = load_spec()
    found = []
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if "$ref" in parameter:
                    name = parameter["$ref"].rsplit("/", 1)[1]
                    parameter = spec["components"]["parameters"][name]
                if parameter["in"] == "query":
                    found.append(parameter)
    return found


@pytest.mark.parametrize("name", ["content_type", "content_id"])
def test_nul_in_a_query_filter_is_refused_by_both(daemon: DaemonProcess, name: str) -> None:
    (parameter,) = [p for p in _query_parameters() if p["name"] == name]
    assert re.search(parameter["schema"]["pattern"], "a\x00b") is None
    assert re.search(parameter["schema"]["pattern"], "ab") is not None
    Api(daemon, new_user("nulq")).problem(
        "GET", "/rooms", 422, "validation-failed", params={name: "a\x00b"}
    )


# -- empty and unknown query parameters -----------------------------------------------------------
def test_every_query_parameter_allows_an_empty_value() -> None:
    """The daemon has always read ``?limit=`` as "not given"; the contract now says so."""
    parameters = _query_parameters()
    assert parameters
    assert all(p.get("allowEmptyValue") is True for p in parameters), parameters


@pytest.mark.parametrize(
    ("template", "params"),
    [
        ("/rooms", dict.fromkeys(("public", "mine", "content_type", "content_id", "active"), "")),
        ("/rooms", {"limit": "", "offset": ""}),
        ("/rooms/{room_id}/participants", {"connected": ""}),
        ("/rooms/{room_id}/chat", {"limit": "", "offset": ""}),
        ("/rooms", {"unknown": "1", "": "false"}),  # unknown parameters are ignored
    ],
)
def test_empty_query_values_count_as_not_given(
    daemon: DaemonProcess, template: str, params: dict[str, str]
) -> None:
    owner = Api(daemon, new_user("empty"))
    room = owner.create_room()
    owner.call("GET", template, 200, params=params, room_id=room["id"])
    owner.call("DELETE", "/rooms/{room_id}", 204, params={"purge": ""}, room_id=room["id"])
