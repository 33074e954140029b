"""Check requests and responses against the OpenAPI contract (api/openapi/syncplay.yaml).

Other tests use this to pin the implementation to the documented wire format::

    from tests.openapi_check import assert_response_conforms

    response = await client.get(f"/api/v1/syncplay/rooms/{room_id}", headers=auth)
    assert_response_conforms(
        "GET", "/rooms/{room_id}", response.status_code, await response.get_json(),
        response.content_type, headers=response.headers,
    )

Path templates are the spec's keys ("/rooms/{room_id}", "/healthz"); the API prefix
"/api/v1/syncplay" may be included. :func:`resolve_path_template` maps a concrete URL
path to its template. Bodies are validated with jsonschema Draft 2020-12, formats
(uuid, date-time) checked, and ``#/components/...`` references resolved against the
whole document through a ``referencing.Registry``.

Every checked response is recorded; :func:`exercised_responses` and
:func:`iter_operations` let a test assert that every documented operation was exercised.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from syncplayd.openapi import load_spec

__all__ = [
    "API_PREFIX",
    "PROBLEM_TYPE_PREFIX",
    "assert_request_conforms",
    "assert_response_conforms",
    "exercised_responses",
    "iter_operations",
    "resolve_path_template",
    "schema_validator",
]

API_PREFIX = "/api/v1/syncplay"
PROBLEM_TYPE_PREFIX = "urn:syncplayd:problem:"
# The base URI under which the whole document is registered ("#/components/..." refs
# resolve against it). Hierarchical on purpose: urljoin does not resolve against URNs.
SPEC_URI = "https://syncplayd.invalid/api/openapi/syncplay.yaml"

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MAX_REPORTED_ERRORS = 10

_exercised: set[tuple[str, str, int]] = set()


def _spec() -> dict[str, Any]:
    return load_spec()


def _escape(segment: str) -> str:
    """One JSON-pointer reference token."""
    return segment.replace("~", "~0").replace("/", "~1")


def _pointer(*segments: str) -> str:
    return "".join("/" + _escape(segment) for segment in segments)


def _at_pointer(pointer: str) -> Any:
    node: Any = _spec()
    for token in pointer.split("/")[1:]:
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(node: Any, pointer: str) -> tuple[dict[str, Any], str]:
    """Follow local ``$ref``s (response, header, parameter objects) to the target."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise AssertionError(f"unsupported $ref {ref!r} at {pointer}")
        if ref in seen:
            raise AssertionError(f"$ref cycle through {ref!r}")
        seen.add(ref)
        pointer = ref[1:]
        node = _at_pointer(pointer)
    if not isinstance(node, dict):
        raise AssertionError(f"expected an object at {pointer}, found {node!r}")
    return node, pointer


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = DRAFT202012.create_resource(_spec())
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


@functools.cache
def schema_validator(pointer: str) -> Draft202012Validator:
    """A Draft 2020-12 validator (formats checked) for the schema at ``pointer`` in the spec.

    ``pointer`` is a JSON pointer into the document, e.g. "/components/schemas/Room".
    """
    _at_pointer(pointer)  # fail early, with a KeyError naming the missing part
    schema = {"$ref": SPEC_URI + "#" + quote(pointer, safe="/~+")}
    return Draft202012Validator(
        schema,
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _validate(instance: object, pointer: str, what: str) -> None:
    errors = sorted(
        schema_validator(pointer).iter_errors(instance),
        key=lambda error: (list(map(str, error.absolute_path)), error.message),
    )
    if not errors:
        return
    lines = [f"{what} does not conform to {pointer}:"]
    for error in errors[:_MAX_REPORTED_ERRORS]:
        lines.append(f"  - at {error.json_path}: {error.message}")
    if len(errors) > _MAX_REPORTED_ERRORS:
        lines.append(f"  ... and {len(errors) - _MAX_REPORTED_ERRORS} more")
    lines.append(f"  instance: {instance!r}")
    raise AssertionError("\n".join(lines))


def _template_key(path_template: str) -> str:
    paths: dict[str, Any] = _spec()["paths"]
    if path_template in paths:
        return path_template
    if path_template.startswith(API_PREFIX + "/"):
        stripped = path_template[len(API_PREFIX) :]
        if stripped in paths and not _is_root_path(stripped):
            return stripped
    raise AssertionError(f"path {path_template!r} is not documented; documented: {sorted(paths)}")


def _is_root_path(path_key: str) -> bool:
    """Whether the path is served at the server root (a path-level ``servers: [/]``)."""
    servers = _spec()["paths"][path_key].get("servers")
    return bool(servers) and all(server.get("url") == "/" for server in servers)


def _operation(method: str, path_template: str) -> tuple[str, str, dict[str, Any]]:
    """(METHOD, path key, operation object) for a documented operation."""
    key = _template_key(path_template)
    path_item: dict[str, Any] = _spec()["paths"][key]
    lower = method.lower()
    if lower not in _HTTP_METHODS or lower not in path_item:
        documented = [m.upper() for m in _HTTP_METHODS if m in path_item]
        raise AssertionError(f"{method.upper()} {key} is not documented (only {documented})")
    return lower.upper(), key, path_item[lower]


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _choose_media_type(content: Mapping[str, Any], content_type: str | None, what: str) -> str:
    if content_type is None:
        if len(content) != 1:
            raise AssertionError(f"{what}: several media types documented, pass content_type")
        return next(iter(content))
    media_type = _media_type(content_type)
    if media_type not in content:
        raise AssertionError(
            f"{what}: content type {content_type!r} is not documented (expected one of "
            f"{sorted(content)})"
        )
    return media_type


def _decode_json(body: object, what: str) -> object:
    if isinstance(body, bytes | bytearray):
        body = bytes(body).decode("utf-8")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError as error:
            raise AssertionError(f"{what}: body is not valid JSON: {error}") from error
    return body


def _header_value(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _check_headers(
    response: dict[str, Any], pointer: str, headers: Mapping[str, str], what: str
) -> None:
    documented: dict[str, Any] = response.get("headers", {})
    for name, header_or_ref in documented.items():
        header, header_pointer = _deref(header_or_ref, f"{pointer}/headers/{_escape(name)}")
        value = _header_value(headers, name)
        if value is None:
            if header.get("required", False):
                raise AssertionError(f"{what}: required header {name!r} is missing")
            continue
        schema = header.get("schema", {})
        instance: object = value
        if schema.get("type") == "integer":
            try:
                instance = int(value)
            except ValueError:
                raise AssertionError(
                    f"{what}: header {name!r} is not an integer: {value!r}"
                ) from None
        _validate(instance, header_pointer + "/schema", f"{what}: header {name!r}")


def assert_response_conforms(
    method: str,
    path_template: str,
    status: int,
    body: object | None,
    content_type: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Fail unless the response is documented and matches the contract.

    ``body`` is the decoded JSON body (bytes or str are decoded for JSON media types),
    or None for no body. ``content_type`` is the response's Content-Type (parameters
    such as charset are ignored); when omitted, the only documented media type is
    assumed. ``headers``, when given, are checked against the documented headers
    (required ones must be present, values must match their schemas).
    """
    verb, key, operation = _operation(method, path_template)
    what = f"{verb} {key} -> {status}"
    responses: dict[str, Any] = operation["responses"]
    status_key = str(status)
    if status_key not in responses:
        range_key = f"{status_key[0]}XX"
        if range_key not in responses:
            raise AssertionError(
                f"{what}: status {status} is not documented (documented: {sorted(responses)})"
            )
        status_key = range_key
    op_pointer = _pointer("paths", key, verb.lower())
    response, pointer = _deref(
        responses[status_key], f"{op_pointer}/responses/{_escape(status_key)}"
    )

    content: dict[str, Any] | None = response.get("content")
    if not content:
        if body not in (None, b"", ""):
            raise AssertionError(f"{what}: documented without a body, got {body!r}")
    else:
        if body is None:
            raise AssertionError(f"{what}: a body is documented ({sorted(content)}), got none")
        media_type = _choose_media_type(content, content_type, what)
        if _is_json(media_type):
            body = _decode_json(body, what)
            schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
            if "schema" in content[media_type]:
                _validate(body, schema_pointer, f"{what} body")
            if media_type == "application/problem+json":
                _check_problem_consistency(body, status, what)
        elif not isinstance(body, str | bytes | bytearray):
            raise AssertionError(f"{what}: a {media_type} body must be str or bytes")
    if headers is not None:
        _check_headers(response, pointer, headers, what)
    _exercised.add((verb, key, status))


def _check_problem_consistency(body: object, status: int, what: str) -> None:
    if not isinstance(body, dict):
        return  # already reported by the schema
    if body.get("status") != status:
        raise AssertionError(f"{what}: problem status {body.get('status')!r} != HTTP {status}")
    code = body.get("code")
    if body.get("type") != f"{PROBLEM_TYPE_PREFIX}{code}":
        raise AssertionError(
            f"{what}: problem type {body.get('type')!r} does not match code {code!r}"
        )


def assert_request_conforms(
    method: str,
    path_template: str,
    body: object | None,
    content_type: str = "application/json",
) -> None:
    """Fail unless ``body`` (decoded JSON, or None for no body) is a valid request body."""
    verb, key, operation = _operation(method, path_template)
    what = f"{verb} {key} request"
    if "requestBody" not in operation:
        if body is not None:
            raise AssertionError(f"{what}: the operation takes no request body")
        return
    request_body, pointer = _deref(
        operation["requestBody"], _pointer("paths", key, verb.lower(), "requestBody")
    )
    if body is None:
        if request_body.get("required", False):
            raise AssertionError(f"{what}: a request body is required")
        return
    media_type = _choose_media_type(request_body["content"], content_type, what)
    if _is_json(media_type):
        body = _decode_json(body, what)
    _validate(body, f"{pointer}/content/{_escape(media_type)}/schema", f"{what} body")


def _iter_operations() -> Iterator[tuple[str, str]]:
    for path, path_item in _spec()["paths"].items():
        for method in _HTTP_METHODS:
            if method in path_item:
                yield method.upper(), path


def iter_operations() -> list[tuple[str, str]]:
    """Every documented operation as (METHOD, path template), in document order."""
    return list(_iter_operations())


def exercised_responses() -> set[tuple[str, str, int]]:
    """(METHOD, path template, status) of every response checked so far in this process."""
    return set(_exercised)


@functools.cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for key in _spec()["paths"]:
        prefix = "" if _is_root_path(key) else re.escape(API_PREFIX)
        parts = re.split(r"(\{[^}/]+\})", key)
        body = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
        patterns.append((re.compile(f"{prefix}{body}"), key))
    return patterns


def resolve_path_template(path: str) -> str:
    """The documented path template for a concrete URL path.

    ``/api/v1/syncplay/rooms/<uuid>/chat?limit=5`` -> ``/rooms/{room_id}/chat``;
    ``/healthz`` -> ``/healthz``.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    for pattern, key in _path_patterns():
        if pattern.fullmatch(path):
            return key
    raise AssertionError(f"no documented path matches {path!r}")
