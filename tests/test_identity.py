"""Bearer tokens: what is accepted and every way a token is refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
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
    proxy_channel_trusted,
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


def _lines(values: Mapping[str, str | list[str]]) -> Callable[[str], list[str]]:
    def lines(name: str) -> list[str]:
        value = values.get(name, [])
        return [value] if isinstance(value, str) else value

    return lines


PROXY_SECRET = "p" * 40


@pytest.mark.parametrize(
    ("via_socket", "peer", "presented", "trusted", "expected"),
    [
        # The proxy socket: its file permissions are the guard.
        (True, None, [], [], True),
        # TCP: a trusted address and the secret, both.
        (False, "10.1.2.3", [PROXY_SECRET], ["10.0.0.0/8"], True),
        (False, "::1", [PROXY_SECRET], ["::1/128"], True),
        # An address alone is what every local process has.
        (False, "127.0.0.1", [], ["127.0.0.1/32"], False),
        (False, "127.0.0.1", ["p" * 39 + "q"], ["127.0.0.1/32"], False),
        (False, "127.0.0.1", [PROXY_SECRET, PROXY_SECRET], ["127.0.0.1/32"], False),
        # The secret alone, from anywhere else.
        (False, "192.168.1.5", [PROXY_SECRET], ["10.0.0.0/8"], False),
        (False, "10.1.2.3", [PROXY_SECRET], [], False),
        (False, None, [PROXY_SECRET], ["10.0.0.0/8"], False),
        (False, "not-an-ip", [PROXY_SECRET], ["10.0.0.0/8"], False),
    ],
)
def test_proxy_channel_is_the_socket_or_address_and_secret(
    via_socket: bool, peer: str | None, presented: list[str], trusted: list[str], expected: bool
) -> None:
    assert (
        proxy_channel_trusted(
            via_socket=via_socket,
            peer=peer,
            presented=presented,
            secret=PROXY_SECRET,
            trusted=trusted,
        )
        is expected
    )


def test_without_a_secret_tcp_is_never_the_proxy_channel() -> None:
    assert not proxy_channel_trusted(
        via_socket=False, peer="127.0.0.1", presented=[""], secret=None, trusted=["127.0.0.1"]
    )


def test_proxy_identity_from_the_headers() -> None:
    user = uuid4()
    headers = {"X-Remote-User-Id": str(user), "X-Remote-User-Name": "Pat\x00", "X-Admin": "true"}
    principal = principal_from_proxy(
        _lines(headers), user_id_header="X-Remote-User-Id",
        user_name_header="X-Remote-User-Name", admin_header="X-Admin",
    )  # fmt: skip
    assert principal == Principal(user, "Pat", is_admin=True)


@pytest.mark.parametrize(
    ("sent", "name"),
    [
        # What the HTTP server hands over for the UTF-8 bytes of "Zoë 東京" (Latin-1 text).
        ("Zoë 東京".encode().decode("latin-1"), "Zoë 東京"),
        # Latin-1 bytes that are not UTF-8 stay as they came.
        ("Zo\xeb", "Zo\xeb"),
    ],
)
def test_a_proxy_name_is_read_as_utf8(sent: str, name: str) -> None:
    headers = {"X-Remote-User-Id": str(uuid4()), "X-Remote-User-Name": sent}
    principal = principal_from_proxy(
        _lines(headers), user_id_header="X-Remote-User-Id",
        user_name_header="X-Remote-User-Name", admin_header="X-Admin",
    )  # fmt: skip
    assert principal is not None and principal.name == name


def test_no_identity_header_falls_back_to_tokens() -> None:
    assert (
        principal_from_proxy(
            _lines({}), user_id_header="X-Remote-User-Id", user_name_header="N", admin_header="A"
        )
        is None
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Remote-User-Id": "bob"},
        # The proxy appended its line instead of replacing the client's.
        {"X-Remote-User-Id": [str(uuid4()), str(uuid4())]},
        {"X-Remote-User-Id": str(uuid4()), "A": ["", "true"]},
    ],
)
def test_a_proxy_sending_a_bad_identity_is_refused(headers: dict[str, str | list[str]]) -> None:
    with pytest.raises(InvalidToken):
        principal_from_proxy(
            _lines(headers), user_id_header="X-Remote-User-Id", user_name_header="N",
            admin_header="A",
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
    lines = [] if forwarded_for is None else [forwarded_for]
    assert client_address(peer, lines, trusted=PROXIES) == client


def test_client_address_without_trusted_proxies_is_the_peer() -> None:
    assert client_address("127.0.0.1", ["203.0.113.5"], trusted=()) == "127.0.0.1"


def test_client_address_reads_a_bounded_number_of_hops() -> None:
    hops = ", ".join(["10.0.0.1"] * 10_000)
    assert client_address("127.0.0.1", ["203.0.113.5, " + hops], trusted=PROXIES) == "10.0.0.1"


@pytest.mark.parametrize(
    ("lines", "client"),
    [
        # A proxy that adds a line of its own: the client's own line (first) proves
        # nothing, the proxy's (last) names the client.
        (["198.51.100.9", "203.0.113.5"], "203.0.113.5"),
        (["198.51.100.9, 192.0.2.1", "203.0.113.5"], "203.0.113.5"),
        # Lines of trusted proxies are skipped like entries of one line.
        (["203.0.113.5", "10.1.2.3"], "203.0.113.5"),
    ],
)
def test_client_address_reads_every_header_line(lines: list[str], client: str) -> None:
    assert client_address("127.0.0.1", lines, trusted=PROXIES) == client


def test_on_the_proxy_socket_the_header_is_believed() -> None:
    # The socket has no peer address: the proxy's header is all there is.
    assert client_address(None, ["203.0.113.5"], trusted=(), peer_trusted=True) == "203.0.113.5"
    assert client_address(None, ["1.1.1.1, 203.0.113.5, 10.1.2.3"], trusted=PROXIES,
                          peer_trusted=True) == "203.0.113.5"  # fmt: skip
    assert client_address(None, [], trusted=(), peer_trusted=True) is None
