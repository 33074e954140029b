"""``syncplayctl``'s pure helpers: ids by prefix, and the watch page's address.

The commands that use them run against a real daemon in ``test_ctl_daemon.py``; the
cases a daemon cannot be made to produce on purpose (two rooms whose random ids share a
prefix, a wildcard listen address) are here.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import click
import pytest

from syncplayd.cli.ids import (
    AmbiguousPrefix,
    IdOrPrefix,
    Prefix,
    UnknownPrefix,
    code_prefix,
    pages,
    resolve,
    resolve_code,
)
from syncplayd.cli.where import WatchBase, watch_base

A = "abcd1234-0000-4000-8000-000000000001"
B = "abcd5678-0000-4000-8000-000000000002"
C = "0123abcd-0000-4000-8000-000000000003"
ROOMS = [{"id": A, "name": "Film"}, {"id": B, "name": "Show\x1b]52;c;x\x07"}, {"id": C}]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (A, UUID(A)),
        (A.upper(), UUID(A)),
        (A.replace("-", ""), UUID(A)),
        ("abcd", Prefix("abcd")),
        ("ABCD-12", Prefix("abcd12")),
        (" abcd1 ", Prefix("abcd1")),
    ],
)
def test_an_id_or_a_prefix(text: str, expected: UUID | Prefix) -> None:
    assert IdOrPrefix("room").convert(text, None, None) == expected


@pytest.mark.parametrize("text", ["abc", "", "a-b-c", "abcz", "room-1", "ab cd"])
def test_what_is_neither_is_a_usage_error(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a room id, nor 4 or more"):
        IdOrPrefix("room").convert(text, None, None)


def test_resolve_a_unique_prefix() -> None:
    assert resolve(Prefix("abcd1"), "room", ROOMS, "id", "name") == UUID(A)
    assert resolve(Prefix("0123ab"), "room", ROOMS, "id", "name") == UUID(C)


def test_a_whole_id_is_not_looked_up() -> None:
    def never() -> Any:
        raise AssertionError("listed for a whole id")
        yield

    assert resolve(UUID(B), "room", never(), "id", "name") == UUID(B)


def test_an_ambiguous_prefix_names_the_candidates_escaped() -> None:
    with pytest.raises(AmbiguousPrefix) as caught:
        resolve(Prefix("abcd"), "room", ROOMS, "id", "name")
    assert str(caught.value) == (
        f"abcd is ambiguous: 2 room ids start with it: {A} (Film),"
        f" {B} (Show\\x1b]52;c;x\\x07); give more characters"
    )


def test_many_candidates_are_counted() -> None:
    rooms = [{"id": f"abcd{n:04x}-0000-4000-8000-000000000000", "name": "x"} for n in range(8)]
    with pytest.raises(AmbiguousPrefix, match=r": 8 room ids start with it: .* and 3 more;"):
        resolve(Prefix("abcd"), "room", rooms, "id", "name")


def test_an_unknown_prefix() -> None:
    with pytest.raises(UnknownPrefix, match=r"^no room id starts with ffff$"):
        resolve(Prefix("ffff"), "room", ROOMS, "id", "name")


def test_codes_by_prefix() -> None:
    invitations = [
        {"code": "ABCDEFGH", "room_id": A},
        {"code": "ABCDXYZ2", "room_id": B},
        {"code": "KMNPQRST", "room_id": A},
    ]
    assert code_prefix("abcd-e") == "ABCDE"  # spelt as people type it
    assert code_prefix("abc") is None
    assert code_prefix("AB0O") is None  # 0 and O are never in a code
    assert resolve_code("ABCDE", invitations) == "ABCDEFGH"
    assert resolve_code("KMNP", invitations) == "KMNPQRST"
    with pytest.raises(AmbiguousPrefix, match=r"^ABCD is ambiguous: 2 invitation codes start"):
        resolve_code("ABCD", invitations)
    with pytest.raises(UnknownPrefix):
        resolve_code("ZZZZ", invitations)


def test_pages_reads_every_page() -> None:
    items = [{"n": n} for n in range(2500)]
    asked: list[tuple[int, int]] = []

    def fetch(limit: int, offset: int) -> dict[str, Any]:
        asked.append((limit, offset))
        return {"items": items[offset : offset + limit], "total": len(items)}

    assert list(pages(fetch)) == items
    assert asked == [(1000, 0), (1000, 1000), (1000, 2000)]


# -- the watch page's address ------------------------------------------------------------------
def _daemon(listen: str = "127.0.0.1:8750", *, web: bool = True) -> dict[str, Any]:
    return {"server": {"listen": listen}, "web": {"enabled": web}}


SOCKET = "unix:/run/syncplayd/admin.sock"


def test_the_public_url_comes_first() -> None:
    base = watch_base("https://watch.example.org/sp/", "http://127.0.0.1:8750", _daemon())
    assert base == WatchBase("https://watch.example.org/sp", None)
    assert base.link(room=A) == f"https://watch.example.org/sp/syncplay/?room={A}"
    assert base.link(invite="ABCD2345") == "https://watch.example.org/sp/syncplay/?invite=ABCD2345"


def test_then_the_admin_url() -> None:
    base = watch_base(None, "http://media.lan:8750/", _daemon())
    assert base.url == "http://media.lan:8750"
    assert base.note is not None and base.note.startswith("built from --url;")


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8750", "http://127.0.0.1:8750"),
        ("0.0.0.0:8750", "http://localhost:8750"),
        ("[::]:8750", "http://localhost:8750"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_then_the_listen_address(listen: str, url: str) -> None:
    base = watch_base(None, SOCKET, _daemon(listen))
    assert base.url == url
    assert base.note is not None and "server.listen" in base.note and "--public-url" in base.note


def test_no_link_without_an_address_or_a_page() -> None:
    picked = watch_base(None, SOCKET, _daemon("127.0.0.1:0"))
    assert (picked.url, picked.link(room=A)) == (None, None)
    assert picked.note is not None and "port is picked at start" in picked.note
    off = watch_base("https://watch.example.org", SOCKET, _daemon(web=False))
    assert off.url is None
    assert off.note == "no watch link: the daemon does not serve the watch page (web.enabled)"
