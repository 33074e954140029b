"""The ticket of a Syncplay client relayed between nodes (``syncplayd.core.syncplay.forward``).

The node that runs the room trusts a ticket instead of checking the client again, so every
way of making one without the nodes' secret, or of using one twice or late, must be
refused with a :class:`WireError` (the shell's ``Error`` and the end of the connection).
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core.syncplay import forward
from syncplayd.core.syncplay.forward import SeenTickets, Ticket
from syncplayd.core.syncplay.wire import WireError, encode_line
from syncplayd.identity import Principal, decode_token, encode_token

SECRET = "s" * 40
KEY = forward.ticket_key(SECRET)
NOW = 1_800_000_000.0
TICKET = Ticket(uuid.uuid4(), uuid.uuid4(), "192.0.2.7", "node-b")


def line_of(ticket: Ticket = TICKET, *, key: bytes = KEY, at: float = NOW, jti: str = "a") -> bytes:
    return forward.ticket_line(ticket, key, at, jti).removesuffix(b"\r\n")


def read(line: bytes, *, now: float = NOW, seen: SeenTickets | None = None) -> Ticket:
    return forward.read_ticket(line, KEY, now, seen or SeenTickets(), leeway=5.0)


def test_a_ticket_reads_back_as_written() -> None:
    line = line_of()
    assert forward.is_ticket_line(line)
    assert read(line) == TICKET


def test_a_ticket_without_an_address_reads_back() -> None:
    ticket = Ticket(uuid.uuid4(), uuid.uuid4(), None, "node-b")
    assert read(line_of(ticket)) == ticket


def test_a_syncplay_line_is_not_a_ticket() -> None:
    assert not forward.is_ticket_line(encode_line({"Hello": {"username": "x"}}))
    assert not forward.is_ticket_line(b"")


def test_a_ticket_is_good_once() -> None:
    seen = SeenTickets()
    line = line_of()
    read(line, seen=seen)
    with pytest.raises(WireError, match="already used"):
        read(line, seen=seen)


def test_a_late_ticket_is_refused_within_the_leeway_only() -> None:
    line = line_of()
    late = NOW + forward.LIFETIME_SECONDS
    read(line, now=late + 4.9)
    with pytest.raises(WireError, match="expired"):
        read(line_of(jti="b"), now=late + 5.1)


def test_a_ticket_from_the_future_is_refused() -> None:
    with pytest.raises(WireError, match="future"):
        read(line_of(at=NOW + 60))


def test_a_ticket_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(WireError, match="invalid forwarding ticket"):
        read(line_of(key=forward.ticket_key("t" * 40)))


def test_a_user_token_is_not_a_ticket_and_a_ticket_is_not_a_user_token() -> None:
    """Signed with the secret itself (what the media server signs users' tokens with),
    or with the ticket's claims but another audience: refused both ways."""
    principal = Principal(user_id=TICKET.user_id, name="x")
    user_token = encode_token(principal, SECRET, ttl=timedelta(hours=1))
    with pytest.raises(WireError, match="invalid forwarding ticket"):
        read(encode_line({forward.COMMAND: user_token}).removesuffix(b"\r\n"))
    ticket_token = json.loads(line_of())[forward.COMMAND]
    with pytest.raises(Exception, match="invalid token"):
        decode_token(ticket_token, SECRET)


def test_a_ticket_with_the_secret_itself_as_key_is_refused() -> None:
    claims = {
        "aud": forward.AUDIENCE, "sub": str(TICKET.user_id), "room": str(TICKET.room_id),
        "addr": None, "node": "n", "iat": int(NOW), "exp": NOW + 10, "jti": "z",
    }  # fmt: skip
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(WireError, match="Signature verification failed"):
        read(encode_line({forward.COMMAND: token}).removesuffix(b"\r\n"))


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "not-a-uuid"},
        {"room": "not-a-uuid"},
        {"room": None},
        {"addr": 7},
        {"node": None},
    ],
)
def test_malformed_claims_are_refused(claims: dict[str, object]) -> None:
    base = {
        "aud": forward.AUDIENCE, "sub": str(TICKET.user_id), "room": str(TICKET.room_id),
        "addr": None, "node": "n", "iat": int(NOW), "exp": NOW + 10, "jti": "m",
    }  # fmt: skip
    token = jwt.encode(base | claims, KEY, algorithm="HS256")
    with pytest.raises(WireError, match="invalid forwarding ticket"):
        read(encode_line({forward.COMMAND: token}).removesuffix(b"\r\n"))


@given(st.binary(max_size=300))
def test_any_line_is_a_ticket_or_a_wire_error(line: bytes) -> None:
    with pytest.raises(WireError):
        read(b'{"' + forward.COMMAND.encode() + b'": ' + line)


def test_seen_tickets_are_bounded_and_forget_expired_ones() -> None:
    seen = SeenTickets(limit=2)
    assert seen.first_use("a", expires=10.0, now=0.0)
    assert seen.first_use("b", expires=20.0, now=0.0)
    # Full of live tickets: a third cannot be told from a replay, so it is refused.
    assert not seen.first_use("c", expires=30.0, now=5.0)
    # Once "a" has expired, it is forgotten and there is room again.
    assert seen.first_use("c", expires=30.0, now=15.0)
    assert not seen.first_use("b", expires=20.0, now=15.0)
