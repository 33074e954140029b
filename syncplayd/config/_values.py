"""Value types and checks shared by the schema and the loader.

``Secret`` and ``ConfigError`` are public (re-exported by ``syncplayd.config``); the checks
raise ``Invalid`` and the loader turns that into a ``ConfigError`` that names the key.
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import re
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit


@typing.final
class Secret:
    """A string that never shows itself: ``str``, ``repr`` and f-strings print a mask.

    Deliberately not a ``str`` subclass, so it cannot leak through concatenation, ``%``
    formatting or a JSON encoder; code that needs the value calls ``reveal()`` at the one place
    it is used (for example the JWT verifier).
    """

    __slots__ = ("_value",)
    _value: str

    MASK: Final = "**********"

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        # Settings are frozen; a secret inside them must be too.
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def reveal(self) -> str:
        """Return the secret value itself."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.MASK!r})"

    def __str__(self) -> str:
        return self.MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant-time, so comparing secrets (e.g. in a reload check) leaks no timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


LogLevel: TypeAlias = Literal["debug", "info", "warning", "error"]

SettingValue: TypeAlias = bool | int | float | str | Path | Secret | tuple[str, ...] | None
"""Any leaf value a setting can hold."""

PlainValue: TypeAlias = "str | int | float | bool | list[str] | dict[str, PlainValue] | None"
"""A YAML/JSON-ready value, as returned by ``dump_settings``."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration; ``str(problem)`` is one line for the operator.

    Attributes:
        message: What is wrong, e.g. ``"expected a number, got 'abc'"``.
        path: The setting's path, e.g. ``("syncplay", "sync", "threshold_seconds")``; empty for
            problems with the file as a whole (unreadable, bad YAML).
        env: The environment variable the bad value came from, if it came from one.
        hint: What the operator probably meant, e.g. ``"did you mean 'server.listen'?"``.
    """

    message: str
    path: tuple[str, ...] = ()
    env: str | None = None
    hint: str | None = None

    @property
    def key(self) -> str:
        """The dotted path (empty for the file as a whole)."""
        return ".".join(self.path)

    def __str__(self) -> str:
        where = f" at '{self.key}'" if self.path else ""
        source = f" (from {self.env})" if self.env else ""
        hint = f"; {self.hint}" if self.hint else ""
        return one_line(f"Error in configuration{where}{source}: {self.message}{hint}")


class ConfigError(Exception):
    """The configuration is invalid: one or more ``problems``, all found in one pass.

    ``str(error)`` is one line (the problems joined by ``"; "``), for a log line; a command line
    prints ``problems`` one per line. ``message``, ``path`` and ``env`` are the first problem's.

    Args:
        message: What is wrong, e.g. ``"expected a number, got 'abc'"``.
        path: The setting's path, e.g. ``("syncplay", "sync", "threshold_seconds")``; empty for
            problems with the file as a whole (unreadable, bad YAML).
        env: The environment variable the bad value came from, if it came from one.
        hint: A suggestion, e.g. ``"did you mean 'server.listen'?"``.
    """

    def __init__(
        self,
        message: str,
        path: tuple[str, ...] = (),
        *,
        env: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems: tuple[ConfigProblem, ...] = (ConfigProblem(message, path, env, hint),)
        super().__init__(message, path)

    @classmethod
    def of(cls, problems: Sequence[ConfigProblem]) -> ConfigError:
        """One error carrying several problems (at least one), in the order given."""
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        first = problems[0]
        error = cls(first.message, first.path, env=first.env, hint=first.hint)
        error.problems = tuple(problems)
        return error

    @property
    def message(self) -> str:
        return self.problems[0].message

    @property
    def path(self) -> tuple[str, ...]:
        return self.problems[0].path

    @property
    def env(self) -> str | None:
        return self.problems[0].env

    def __str__(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)


class Invalid(ValueError):
    """A value failed validation; the loader adds the path and source.

    ``hint``, if given, is a suggestion (``"did you mean {content_id}?"``) for the problem.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The ``candidates`` that ``word`` looks like a typo of, best first (case is ignored)."""
    folded: dict[str, str] = {}
    for candidate in candidates:
        folded.setdefault(candidate.lower(), candidate)
    return [folded[m] for m in difflib.get_close_matches(word.lower(), folded, n=n)]


def one_line(text: str) -> str:
    """Escape non-printable characters."""
    # Keys and values can come from arbitrary YAML; escape anything that would break the line
    # (newlines, U+2028, control characters) so a log line stays one log line.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def short(text: str, limit: int = 60) -> str:
    """Cut ``text`` to ``limit`` characters, so a huge bad value cannot flood a log line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(raw: object, *, hide: bool = False) -> str:
    """Name a bad input value for an error message, never echoing a secret."""
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        # repr() of a huge int is slow or refused (sys.int_info limit); nobody needs the digits.
        return repr(raw) if raw.bit_length() <= 64 else "a very large integer"
    if isinstance(raw, float):
        return repr(raw)
    if isinstance(raw, str):
        return "a string" if hide else short(repr(raw))
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return f"a {type(raw).__name__}"


# Checks referenced by the schema: each returns the value (possibly normalised) or raises
# Invalid, a ValueError the loader turns into a ConfigError naming the key and its source.

_LISTEN_RE: Final = re.compile(r"(?:\[(?P<v6>[^\[\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]+)")
_HOSTNAME_RE: Final = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def parse_listen(value: str) -> tuple[str, int]:
    """Split a ``HOST:PORT`` listen address; IPv6 hosts are bracketed (``[::1]:8750``).

    Returns:
        The host (without brackets) and the port; port 0 means "pick a free port".

    Raises:
        ValueError: The address is malformed or the port is outside 0..65535.
    """
    match = _LISTEN_RE.fullmatch(value)
    if match is None:
        raise Invalid(f"expected HOST:PORT (IPv6 as [::1]:8750), got {describe(value)}")
    port = int(match["port"]) if len(match["port"]) <= 5 else 65536
    if port > 65535:
        raise Invalid(f"the port must be between 0 and 65535, got {describe(value)}")
    if match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise Invalid(f"not an IPv6 address in {describe(value)}") from None
        return match["v6"], port
    host: str = match["host"]
    if re.fullmatch(r"[0-9.]+", host):
        # All digits and dots: it must be an IPv4 address, not a hostname that happens to fail.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise Invalid(f"not an IPv4 address in {describe(value)}") from None
    elif not _HOSTNAME_RE.fullmatch(host):
        raise Invalid(f"not a valid host name in {describe(value)}")
    return host, port


def check_listen(value: str) -> str:
    parse_listen(value)
    return value


SQLITE_PREFIX: Final = "sqlite:///"


# Query parameters that hold a password (libpq: ``password``, ``sslpassword`` for the client
# key) or another credential; matched anywhere in the name, so ``sslpassword`` is covered.
_SECRET_PARAM: Final = re.compile(r"(?i)password|passwd|pwd|secret|token")


def mask_url(url: str) -> str:
    """Hide the password of a URL (userinfo, and query parameters such as ``password=``
    and ``sslpassword=``).

    The URL is edited in place rather than rebuilt with ``urlunsplit``, which would turn
    ``sqlite:////abs/path`` into ``sqlite://abs/path``.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        # Not parseable, so we cannot tell where the password is: hide all of it.
        return Secret.MASK
    masked = url
    if password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        masked = masked.replace(parts.netloc, f"{user}:{Secret.MASK}@{hostport}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(_SECRET_PARAM.search(key) for key, _ in pairs):
        masked_pairs = [(k, Secret.MASK if _SECRET_PARAM.search(k) else v) for k, v in pairs]
        query = urlencode(masked_pairs, safe="*")
        masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def check_database_url(url: str) -> str:
    if url.startswith(SQLITE_PREFIX):
        if url == SQLITE_PREFIX:
            raise Invalid("a sqlite:/// URL needs a file path after the three slashes")
        return url
    scheme, sep, _ = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        try:
            _ = urlsplit(url).port  # raises ValueError for a bad port or netloc
        except ValueError as exc:
            raise Invalid(f"invalid PostgreSQL URL {short(repr(mask_url(url)))}: {exc}") from None
        return url
    raise Invalid(
        "expected a URL starting with sqlite:///, postgresql:// or postgres://, "
        f"got {short(repr(mask_url(url)))}"
    )


def _is_origin(text: str) -> bool:
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and parts.username is None
        and not any((parts.path, parts.query, parts.fragment))
    )


def check_network(value: str) -> str:
    """An IP address or CIDR network (a trusted proxy)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise Invalid(
            f"expected an IP address or network like 10.0.0.0/8, got {describe(value)}"
        ) from None


def check_host(value: str) -> str:
    """A host name or IP address a request may name in its ``Host`` header (no port).

    Stored in the form the daemon compares a ``Host`` header in (``server/http/auth.py``):
    lower case, an IP address in its canonical form without brackets, no trailing dot.
    """
    host = value.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", host) or not _HOSTNAME_RE.fullmatch(host):
        raise Invalid(
            f"expected a host name or IP address like media.example.org (no port),"
            f" got {describe(value)}"
        )
    return host


def check_origin(origin: str) -> str:
    if not _is_origin(origin):
        raise Invalid(
            f"expected an origin like 'https://example.com' (no path), got {describe(origin)}"
        )
    # Browsers send scheme and host in lower case; store what we will compare against.
    return origin.lower()


#: What the watch page replaces in ``web.media_url_template`` (``mediaUrl`` in
#: ``web/syncplay-client.js``, ``media_url_refusal`` in ``server/http/web.py``; ``{media_token}``,
#: the link's ``#media_token=``, by ``withMediaToken`` in ``web/watch/watch-util.js``): nothing
#: else is a placeholder, so a misspelt one would reach every member's browser as literal text.
MEDIA_URL_PLACEHOLDERS: Final = ("content_type", "content_id", "media_token")
_BRACED: Final = re.compile(r"\{([^{}]*)\}")


def check_media_url_template(template: str) -> str:
    """Every ``{...}`` in the template must be a known placeholder, and every brace in one."""
    unknown = [m[1] for m in _BRACED.finditer(template) if m[1] not in MEDIA_URL_PLACEHOLDERS]
    *most, last = (f"{{{name}}}" for name in MEDIA_URL_PLACEHOLDERS)
    known = f"{', '.join(most)} and {last}"
    if unknown:
        names = ", ".join(short(f"{{{name}}}", 40) for name in unknown)
        guesses = []
        for name in unknown:
            match = close_matches(name.strip(), MEDIA_URL_PLACEHOLDERS, n=1)
            if match:
                guess = f"{{{match[0]}}}"
                guesses.append(guess if len(unknown) == 1 else f"{guess} for {{{short(name, 40)}}}")
        raise Invalid(
            f"unknown placeholder{'s' if len(unknown) > 1 else ''} {names}:"
            f" the watch page replaces only {known}",
            hint=f"did you mean {' and '.join(guesses)}?" if guesses else None,
        )
    if re.search(r"[{}]", _BRACED.sub("", template)):
        raise Invalid(f"a brace outside a placeholder in {describe(template)}: braces mark {known}")
    return template


_NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def check_node_id(value: str) -> str:
    """A node's name: 1 to 64 letters, digits, '.', '_', ':' or '-' (it goes into logs,
    ``syncplayctl status`` tables and the database)."""
    if _NODE_ID.fullmatch(value) is None:
        raise Invalid(
            f"expected 1 to 64 letters, digits, '.', '_', ':' or '-', got {describe(value)}"
        )
    return value


def check_node_url(value: str) -> str:
    """How others reach a node: ``http(s)://HOST[:PORT]``, no path, query or credentials."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise Invalid(f"expected http://HOST:PORT (no path), got {describe(value)}")
    return value.rstrip("/")
