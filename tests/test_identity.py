"""Bearer tokens: what is accepted and every way a token is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import jwt
import pytest

from syncplayd.identity import (
    InvalidToken,
    Principal,
    client_address,
    decode_token,
    encode_token,
    load_or_create_secret,
    principal_from_proxy,
)

SECRET = "s" * 64


def test_round_trip_keeps_identity_and_admin_role() -> None:
    principal = Principal(uuid4(), "Ada", is_admin=True)
    token = encode_token(principal, SECRET, ttl=timedelta(minutes=5))
    assert decode_token(token, SECRET) == principal


def _unsigned(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _claims(**extra: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": str(uuid4()),
        "name": "Ada",
        "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
    }
    claims.update(extra)
    return claims


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-jwt", id="malformed"),
        pytest.param(jwt.encode(_claims(), "x" * 64, algorithm="HS256"), id="wrong-signature"),
        pytest.param(_unsigned(_claims()), id="alg-none"),
        pytest.param(jwt.encode(_claims(), SECRET, algorithm="HS512"), id="other-alg"),
        pytest.param(jwt.encode(_claims(exp=1), SECRET, algorithm="HS256"), id="expired"),
        pytest.param(
            jwt.encode(
                {k: v for k, v in _claims().items() if k != "exp"}, SECRET, algorithm="HS256"
            ),
            id="no-exp",
        ),
        pytest.param(jwt.encode(_claims(sub="bob"), SECRET, algorithm="HS256"), id="sub-not-uuid"),
        pytest.param(jwt.encode(_claims(name=""), SECRET, algorithm="HS256"), id="blank-name"),
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken) as info:
        decode_token(token, SECRET)
    assert token not in str(info.value) or not token


def test_leeway_accepts_slightly_expired() -> None:
    now = datetime.now(UTC)
    token = encode_token(
        Principal(uuid4(), "A"), SECRET, ttl=timedelta(seconds=1), now=now - timedelta(seconds=10)
    )
    with pytest.raises(InvalidToken):
        decode_token(token, SECRET)
    assert decode_token(token, SECRET, leeway_seconds=30).name == "A"


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    secret, created = load_or_create_secret(tmp_path / "state")
    assert created
    assert len(secret) >= 32
    assert (tmp_path / "state" / "jwt_secret").stat().st_mode & 0o077 == 0
    assert load_or_create_secret(tmp_path / "state") == (secret, False)


def test_control_characters_are_dropped_from_names() -> None:
    token = jwt.encode(_claims(name="Ada\x00\x1b[31m\n"), SECRET, algorithm="HS256")
    assert decode_token(token, SECRET).name == "Ada[31m"
    only_controls = jwt.encode(_claims(name="\x00\x07"), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        decode_token(only_controls, SECRET)


def _headers(values: dict[str, str]) -> Callable[[str], str | None]:
    return values.get


@pytest.mark.parametrize(
    ("client", "trusted", "expected"),
    [
        ("10.1.2.3", ["10.0.0.0/8"], True),
        ("10.1.2.3", [], False),
        ("192.168.1.5", ["10.0.0.0/8"], False),
        (None, ["10.0.0.0/8"], False),
        ("not-an-ip", ["10.0.0.0/8"], False),
        ("::1", ["::1/128"], True),
    ],
)
def test_proxy_identity_only_from_trusted_addresses(
    client: str | None, trusted: list[str], expected: bool
) -> None:
    user = uuid4()
    headers = {"X-Remote-User-Id": str(user), "X-Remote-User-Name": "Pat\x00", "X-Admin": "true"}
    principal = principal_from_proxy(
        _headers(headers), client, trusted=trusted, user_id_header="X-Remote-User-Id",
        user_name_header="X-Remote-User-Name", admin_header="X-Admin",
    )  # fmt: skip
    if expected:
        assert principal == Principal(user, "Pat", is_admin=True)
    else:
        assert principal is None


def test_a_trusted_proxy_sending_a_bad_id_is_refused() -> None:
    with pytest.raises(InvalidToken):
        principal_from_proxy(
            _headers({"X-Remote-User-Id": "bob"}), "10.0.0.1", trusted=["10.0.0.0/8"],
            user_id_header="X-Remote-User-Id", user_name_header="N", admin_header="A",
        )  # fmt: skip


PROXIES = ("127.0.0.1", "10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # The header counts only from a trusted proxy.
        ("198.51.100.7", "203.0.113.5", "198.51.100.7"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
        # Read from the right: what the client wrote itself (on the left) proves nothing.
        ("127.0.0.1", "1.1.1.1, 203.0.113.5", "203.0.113.5"),
        # A chain of trusted proxies is skipped to the first address that is not one.
        ("127.0.0.1", "203.0.113.5, 10.1.2.3", "203.0.113.5"),
        ("127.0.0.1", "2001:db8::1,10.1.2.3, 10.9.9.9", "2001:db8::1"),
        # Only proxies in the header: the leftmost of them is as far as it goes.
        ("127.0.0.1", "10.1.2.3, 10.9.9.9", "10.1.2.3"),
        # Garbage stops the walk at the last hop that was believed.
        ("127.0.0.1", "203.0.113.5, not-an-ip", "127.0.0.1"),
        ("127.0.0.1", "not-an-ip, 10.1.2.3", "10.1.2.3"),
        ("127.0.0.1", "203.0.113.5:4711", "127.0.0.1"),
        # A unix socket peer (no address) is not a trusted proxy.
        (None, "203.0.113.5", None),
        ("unix-socket", "203.0.113.5", "unix-socket"),
    ],
)
def test_client_address_through_trusted_proxies(
    peer: str | None, forwarded_for: str | None, client: str | None
) -> None:
    assert client_address(peer, forwarded_for, trusted=PROXIES) == client


def test_client_address_without_trusted_proxies_is_the_peer() -> None:
    assert client_address("127.0.0.1", "203.0.113.5", trusted=()) == "127.0.0.1"


def test_client_address_reads_a_bounded_number_of_hops() -> None:
    hops = ", ".join(["10.0.0.1"] * 10_000)
    assert client_address("127.0.0.1", "203.0.113.5, " + hops, trusted=PROXIES) == "10.0.0.1"
