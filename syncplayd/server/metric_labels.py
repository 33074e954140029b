"""The label values the metrics accept, and how to read them off a message or a frame.

Every label value is drawn from a fixed set (the protocol's message types, the documented
error codes, HTTP methods, the repository's methods), with anything else counted as
:data:`OTHER`: a label fed from client input would otherwise let any client create series
without bound and exhaust the Prometheus server.

Each set is derived from where its values are declared (the protocol's message unions,
:mod:`syncplayd.core.error_codes`, the ``Repository`` protocol), so a new message type, code
or method is counted without touching this module. :class:`~syncplayd.server.metrics.Metrics`
applies the sets; the live-room code uses :func:`message_type` and :func:`frame_type` to label
what it counts.
"""

from __future__ import annotations

import typing
from typing import Final

import msgspec

from syncplayd.core import protocol
from syncplayd.core.error_codes import ERROR_FRAME_CODES, PROBLEM_CODES, UPGRADE_REFUSAL_CODES
from syncplayd.storage.timed import OPERATIONS

__all__ = [
    "CLIENT_MESSAGE_TYPES",
    "ERROR_CODES",
    "HTTP_METHODS",
    "OTHER",
    "REPOSITORY_OPERATIONS",
    "SERVER_MESSAGE_TYPES",
    "bounded",
    "frame_type",
    "message_type",
]

#: The label value for anything outside a label's known set.
OTHER: Final = "other"

#: ``type`` values of ``syncplayd_messages_in_total``: the client messages of the protocol.
CLIENT_MESSAGE_TYPES: Final = frozenset(protocol.CLIENT_TYPES)

#: ``type`` values of ``syncplayd_messages_out_total``: the server messages of the protocol.
SERVER_MESSAGE_TYPES: Final = frozenset(
    str(cls.__struct_config__.tag) for cls in typing.get_args(protocol.ServerMessage)
)

#: ``code`` values of ``syncplayd_errors_total``: problem codes, ``error`` frame codes, and the
#: closing reasons (so a connection dropped as ``too-slow`` or ``idle-timeout`` is counted).
ERROR_CODES: Final = (
    PROBLEM_CODES
    | ERROR_FRAME_CODES
    | UPGRADE_REFUSAL_CODES
    | frozenset(typing.get_args(protocol.CloseReason))
)

#: ``method`` values of ``syncplayd_http_requests_total``.
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: ``operation`` values of ``syncplayd_database_seconds``: what the timed repository reports.
REPOSITORY_OPERATIONS: Final = OPERATIONS

_FRAME_PREFIX: Final = '{"type":"'


def message_type(message: msgspec.Struct) -> str:
    """The ``type`` tag of a decoded protocol message (``"play"``, ``"joined"``, ...)."""
    return str(type(message).__struct_config__.tag)


def frame_type(frame: str) -> str:
    """The ``type`` of an encoded server frame, without decoding it.

    msgspec writes the tag field first, so a server frame starts with ``{"type":"<tag>"``;
    anything else gives :data:`OTHER`. Meant for the connection writer, which only holds
    the encoded text.
    """
    if frame.startswith(_FRAME_PREFIX):
        end = frame.find('"', len(_FRAME_PREFIX))
        if end != -1:
            return frame[len(_FRAME_PREFIX) : end]
    return OTHER


def bounded(value: str, known: frozenset[str]) -> str:
    """``value`` if it is in ``known``, else :data:`OTHER`."""
    return value if value in known else OTHER
