"""The error codes clients branch on, declared once.

A code is public contract: the REST API puts it in a problem document's ``code`` (and its
``type``), the WebSocket in an ``error`` frame's ``code``. Clients switch on them, the metrics
count by them, and three documents list them; this module is the one list in the code, and
``tests/core/test_error_codes.py`` fails when it and the documents disagree:

* :data:`PROBLEM_CODES` is the ``ProblemCode`` enum of ``api/openapi/syncplay.yaml`` (and the
  table in ``docs/api.md`` "Errors");
* :data:`ERROR_FRAME_CODES` is the table of ``docs/protocol.md`` §4.9;
* :data:`UPGRADE_REFUSAL_CODES` is the table of ``docs/protocol.md`` §2.3: problem documents
  answering a WebSocket upgrade, which the OpenAPI contract does not describe.

The sets overlap on purpose (``not-found``, ``room-full``...): a refusal means the same over
both transports. Closing reasons are a different thing (a ``closing`` frame's ``reason``) and
are typed where they are sent, as ``syncplayd.core.protocol.CloseReason``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ERROR_FRAME_CODES", "PROBLEM_CODES", "UPGRADE_REFUSAL_CODES"]

#: ``code`` of the REST API's problem documents.
PROBLEM_CODES: Final = frozenset(
    {
        "bad-request",
        "unauthorized",
        "forbidden",
        "not-a-member",
        "banned",
        "muted",
        "wrong-password",
        "invitation-invalid",
        "public-rooms-disabled",
        "password-rooms-disabled",
        "chat-disabled",
        "not-found",
        "room-full",
        "room-ended",
        "invitation-expired",
        "invitation-used-up",
        "payload-too-large",
        "unsupported-media-type",
        "validation-failed",
        "rate-limited",
        "unavailable",
        "disabled",
        "too-many-rooms",
        "too-many-invitations",
        "too-many-attempts",
        # A room's queue holds MAX_QUEUE_ITEMS items already (409).
        "queue-full",
        "method-not-allowed",
        # server.allowed_hosts (421), and a cross-site request under the proxy's identity (403).
        "host-not-allowed",
        "origin-not-allowed",
        "internal-error",
        "http-error",
    }
)

#: ``code`` of the WebSocket protocol's ``error`` frames.
ERROR_FRAME_CODES: Final = frozenset(
    {
        "too-large",
        "bad-json",
        "unknown-type",
        "bad-message",
        "unsupported-protocol",
        "not-joined",
        "too-many-connections",
        "not-found",
        "room-ended",
        "not-a-member",
        "banned",
        "muted",
        "wrong-password",
        "invitation-invalid",
        "invitation-expired",
        "invitation-used-up",
        "room-full",
        "too-many-attempts",
        "already-joined",
        "not-allowed",
        # A plain member's play in a start_when_ready room while someone is not ready.
        "not-ready",
        "rate-limited",
        "chat-disabled",
        "validation-failed",
        "bad-resume",
        # The database could not be reached for a join, a chat message or a command.
        "unavailable",
    }
)

#: ``code`` of the problem documents that refuse a WebSocket upgrade (identity headers from a
#: trusted proxy that do not parse also get the REST API's ``unauthorized``).
UPGRADE_REFUSAL_CODES: Final = frozenset(
    {"host-not-allowed", "disabled", "origin-not-allowed", "unavailable"}
)
