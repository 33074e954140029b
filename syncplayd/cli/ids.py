"""Ids as people type them: a whole UUID or code, or a unique prefix of one, as git takes.

A room id is 36 characters that nobody retypes; its first few are enough when no other
room starts with them. :class:`IdOrPrefix` is the click type of such an argument: a
whole UUID comes back as a :class:`~uuid.UUID` (and costs nothing more), anything
shorter as a :class:`Prefix`, which :func:`resolve` matches against what the admin API
lists. At least :data:`MIN_PREFIX` characters are needed, so that a prefix is a
deliberate choice and not a typo that happens to match.

Invitation codes take the same treatment, with the admin API's own spelling rules (case
and dashes do not matter): see :func:`code_prefix`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

import click

from syncplayd.cli.admin_client import JSON, AdminError
from syncplayd.cli.output import cell
from syncplayd.core.codes import ALPHABET, normalize_code

#: The fewest characters of an id or code taken as a prefix.
MIN_PREFIX = 4
#: Candidates named in an "ambiguous" error; the rest are counted.
SHOWN_CANDIDATES = 5
#: Rows fetched per request while resolving (the admin API's largest page).
PAGE = 1000
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Prefix:
    """The start of an id: lower-case hex digits, dashes removed."""

    digits: str

    def matches(self, uuid_text: str) -> bool:
        return uuid_text.replace("-", "").lower().startswith(self.digits)


class UnknownPrefix(AdminError):
    """No id (or code) starts with the prefix."""


class AmbiguousPrefix(AdminError):
    """More than one id (or code) starts with the prefix."""


class IdOrPrefix(click.ParamType[UUID | Prefix]):
    """A UUID, or at least :data:`MIN_PREFIX` of its first hex digits."""

    name = "id"

    def __init__(self, noun: str) -> None:
        self.noun = noun

    def convert(
        self, value: UUID | Prefix | str, param: click.Parameter | None, ctx: click.Context | None
    ) -> UUID | Prefix:
        if isinstance(value, UUID | Prefix):
            return value
        text = value.strip()
        try:
            return UUID(text)
        except ValueError:
            pass
        digits = text.replace("-", "").lower()
        if len(digits) < MIN_PREFIX or not set(digits) <= _HEX:
            self.fail(
                f"{value!r} is not a {self.noun} id, nor {MIN_PREFIX} or more of its first"
                " characters",
                param,
                ctx,
            )
        return Prefix(digits)


def resolve(
    wanted: UUID | Prefix, noun: str, candidates: Iterable[JSON], key: str, label: str
) -> UUID:
    """``wanted`` itself, or the one candidate whose ``key`` starts with the prefix.

    Args:
        wanted: What the argument was: a whole id is returned as it is.
        noun: What the ids are, for the messages ("room", "user").
        candidates: Documents of the admin API, read only when ``wanted`` is a prefix.
        key: The field holding the id.
        label: The field shown beside each candidate in the "ambiguous" message.

    Raises:
        UnknownPrefix: No candidate matches.
        AmbiguousPrefix: More than one does; the message lists them.
    """
    if isinstance(wanted, UUID):
        return wanted
    found = {c[key]: c for c in candidates if wanted.matches(c[key])}
    return UUID(_one(wanted.digits, noun, found, label))


def code_prefix(code: str) -> str | None:
    """The code as the admin API stores it, if it can be a prefix (else ``None``)."""
    canonical = normalize_code(code)
    if len(canonical) < MIN_PREFIX or not set(canonical) <= set(ALPHABET):
        return None
    return canonical


def resolve_code(prefix: str, invitations: Iterable[JSON]) -> str:
    """The one invitation code that starts with ``prefix`` (see :func:`code_prefix`).

    Raises:
        UnknownPrefix: No code matches.
        AmbiguousPrefix: More than one does.
    """
    found = {i["code"]: i for i in invitations if i["code"].startswith(prefix)}
    return _one(prefix, "invitation", found, "room_id", what="code")


def pages(fetch: Callable[[int, int], JSON]) -> Iterator[JSON]:
    """Every item of a paged admin API listing: ``fetch(limit, offset)`` per page."""
    offset = 0
    while True:
        page = fetch(PAGE, offset)
        items: list[JSON] = page["items"]
        yield from items
        offset += len(items)
        if not items or offset >= page["total"]:
            return


def _one(prefix: str, noun: str, found: dict[str, JSON], label: str, what: str = "id") -> str:
    if not found:
        raise UnknownPrefix(f"no {noun} {what} starts with {prefix}")
    if len(found) > 1:
        named = [f"{key} ({cell(item.get(label), width=30)})" for key, item in found.items()]
        shown = ", ".join(named[:SHOWN_CANDIDATES])
        more = len(named) - SHOWN_CANDIDATES
        shown += f" and {more} more" if more > 0 else ""
        raise AmbiguousPrefix(
            f"{prefix} is ambiguous: {len(found)} {noun} {what}s start with it: {shown};"
            " give more characters"
        )
    (key,) = found
    return key
