"""Logging for the daemon: plain text or JSON lines, request context, and no secrets.

:func:`configure_logging` installs one handler on the root logger. Its output is plain text
on a terminal and one JSON object per line otherwise (journald, files, log shippers), chosen
by ``logging.format`` (``auto``, ``text`` or ``json``).

Context: code that serves a room or a user wraps its work in :func:`log_context`; every record
logged inside (by any logger, in this task or in tasks and worker threads it starts) carries
``room_id``, ``user_id`` and ``session_id`` without passing them around. The values live in a
:class:`contextvars.ContextVar`, and trio copies the spawning task's context into each new
task (and into ``trio.to_thread`` threads), so a room's tasks inherit the room's context.

Redaction: :class:`RedactingFilter` rewrites every record's message, arguments, exception
and stack text through :func:`redact` before it is formatted, and the formatters redact what
they add themselves, so a bearer token, a JWT, an ``Authorization`` header, a
``password=``/``token=`` pair or a database URL password never reaches a log line, even when
someone logs a request, a settings object or an exception carelessly. Values that match no
pattern (the JWT secret itself, a database password on its own) can be registered with
:func:`register_secret`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, Literal, TextIO
from uuid import UUID

__all__ = [
    "CONTEXT_FIELDS",
    "MASK",
    "ContextFilter",
    "JsonFormatter",
    "LogFormat",
    "RedactingFilter",
    "TextFormatter",
    "configure_logging",
    "current_log_context",
    "log_context",
    "redact",
    "register_secret",
]

LogFormat = Literal["auto", "text", "json"]

#: What replaces a secret in a log line.
MASK: Final = "***"

#: Context fields, in the order the text format prints them.
CONTEXT_FIELDS: Final = ("room_id", "user_id", "session_id")

#: Record attributes the formatters print when present: the context plus ``code`` (a stable
#: error code, passed as ``extra={"code": ...}``).
EXTRA_FIELDS: Final = (*CONTEXT_FIELDS, "code")

# Short names for the text format: `room=… user=…` reads better on a terminal than `room_id=`.
_TEXT_LABELS: Final = {
    "room_id": "room",
    "user_id": "user",
    "session_id": "session",
    "code": "code",
}

# Third-party loggers and the level they are held at unless the daemon runs at debug level.
# hypercorn.error says "Running on ..." at info for every bind (we log our own line); the
# psycopg pool narrates connection management at info. Their warnings still come through.
_QUIET_LOGGERS: Final = ("hypercorn.error", "psycopg.pool")
# Access logs would double every request in the log (the reverse proxy keeps those); hypercorn
# only writes them when configured to, but a level above CRITICAL keeps it off regardless.
_SILENT_LOGGERS: Final = ("hypercorn.access",)
# Held at WARNING even at debug level: the HTTP/2 header codec logs every header it encodes
# or decodes at debug, cookies and media-server tokens (X-Emby-Token ...) included, in forms
# no redaction pattern knows. Nothing in them helps debug syncplayd.
_HEADER_LOGGERS: Final = ("hpack", "h2")
_OFF: Final = logging.CRITICAL + 10

# Registered secrets shorter than this are ignored: masking every occurrence of a short
# string would mangle ordinary words (a short database password is still caught by the URL
# and key=value patterns).
_MIN_SECRET_LENGTH: Final = 6

# -- context ------------------------------------------------------------------------------

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "syncplayd_log_context", default=MappingProxyType({})
)


@contextmanager
def log_context(
    *,
    room_id: UUID | str | None = None,
    user_id: UUID | str | None = None,
    session_id: str | None = None,
) -> Iterator[None]:
    """Attach ids to every record logged inside the block (nested blocks add to the outer).

    ``None`` leaves a field as the enclosing context has it. Tasks started inside the block
    (``nursery.start_soon`` copies the caller's context) keep the ids for their whole life,
    even after the block exits; a block inside a child task does not affect its parent.
    """
    given = {"room_id": room_id, "user_id": user_id, "session_id": session_id}
    merged = dict(_context.get())
    merged.update({key: str(value) for key, value in given.items() if value is not None})
    # A read-only mapping: the same object is shared by every task that inherits it.
    token = _context.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, str]:
    """The context fields set in this task (an empty mapping outside any :func:`log_context`)."""
    return _context.get()


class ContextFilter(logging.Filter):
    """Copy the current :func:`log_context` fields onto each record.

    A field given explicitly with ``extra=`` wins over the context. Attach it to a handler,
    not a logger: logger filters do not see records that propagate from child loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


# -- redaction ----------------------------------------------------------------------------

# Key names whose values are secrets: password, passwd, pwd, secret, token, api key,
# credential(s), with any prefix or suffix (jwt_secret, access_token, sslpassword,
# password_hash, ...). Matching too much costs a masked harmless value; too little, a leak.
_KEY = r"[A-Za-z0-9_.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|credential)[A-Za-z0-9_-]*"
_QUOTED = r"""b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*\""""

_Replacement = str | Callable[[re.Match[str]], str]


def _mask_keeping_quotes(match: re.Match[str]) -> str:
    # `'password': 'x'` -> `'password': '***'`: the masked text keeps its quoting, so a
    # masked dict repr or JSON fragment still reads as one.
    value = match.group("value")
    quote = value.lstrip("b")[:1]
    masked = f"{quote}{MASK}{quote}" if quote in ("'", '"') else MASK
    return match.group("head") + masked


_PATTERNS: Final[tuple[tuple[re.Pattern[str], _Replacement], ...]] = (
    # URL userinfo: postgresql://user:secret@host -> postgresql://user:***@host (any scheme).
    # The password runs to the last "@" before a "/" or whitespace, as libpq reads it, so a
    # raw "@" in the password does not leave its tail behind.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]+@"), rf"\1{MASK}@"),
    # Authorization / Proxy-Authorization headers in any rendering: "Authorization: Basic x",
    # {'authorization': 'Bearer x'}, ASGI's (b'authorization', b'Bearer x'), authorization=x.
    # The whole value goes: the scheme is harmless but the credential format varies.
    (
        re.compile(
            r"""(?i)(?P<head>\b(?:proxy-)?authorization\b['"]?\s*[:=,]\s*(?:b?['"])?)[^'"\r\n]+"""
        ),
        rf"\g<head>{MASK}",
    ),
    # Quoted keys (dict reprs, JSON): 'password': 'x', "token": "x", "api_key": 123.
    (
        re.compile(rf"""(?i)(?P<head>(['"])(?:{_KEY})\2\s*:\s*)(?P<value>{_QUOTED}|[^\s,}}\]]+)"""),
        _mask_keeping_quotes,
    ),
    # key=value pairs: query strings (?token=x&...), libpq conninfo (password='x y'), logfmt.
    (
        re.compile(
            rf"""(?i)(?P<head>(?<![A-Za-z0-9_])(?:{_KEY})\s*=\s*)"""
            rf"""(?P<value>{_QUOTED}|[^\s&,;'"<>)\]}}]+)"""
        ),
        _mask_keeping_quotes,
    ),
    # Unquoted "password: x" / "jwt_secret: x" (YAML, free text). Not for "token": messages
    # like "invalid token: Signature has expired" are useful and hold no secret; a token
    # itself is caught by the JWT and bearer patterns below.
    (
        re.compile(
            r"(?i)(?P<head>(?<![A-Za-z0-9_-])[A-Za-z0-9_.-]*?(?:password|passwd|secret)"
            rf"""[A-Za-z0-9_-]*:\s+)(?P<value>{_QUOTED}|[^\s'"]+)"""
        ),
        _mask_keeping_quotes,
    ),
    # Bearer credentials anywhere (opaque admin tokens as well as JWTs). A plain lower-case
    # word after "bearer" is prose ("a bearer token is required"), not a credential: random
    # tokens have digits, capitals or punctuation, and headers are caught above regardless.
    (
        re.compile(r"""(?i)\b(bearer)\s+(?![a-z]+(?:[\s.,;:!?)'"]|$))[A-Za-z0-9._~+/=-]+"""),
        rf"\1 {MASK}",
    ),
    # JWT-looking strings: base64url JSON ("eyJ" is '{"') and any dot-separated segments after
    # it (three for a JWS, five for a JWE, fewer for a truncated one).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}(?:\.[A-Za-z0-9_-]*)*"), MASK),
)

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask every occurrence of ``value`` from now on (e.g. the JWT secret, a DB password).

    Values shorter than 6 characters are ignored (see ``_MIN_SECRET_LENGTH``).
    """
    if value is not None and len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every secret the patterns recognise (and every registered one) masked.

    Idempotent: redacting redacted text changes nothing.
    """
    # Longest first, so a secret that contains another registered one is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(value: object) -> object:
    # Only for args that cannot be merged into the message (see RedactingFilter): keep
    # numbers as numbers so a "%d" still has a chance, render everything else redacted.
    if isinstance(value, int | float) or value is None:
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Mask secrets in a record's message, arguments, exception and stack text.

    The message is merged with its arguments first and the result redacted, so a secret is
    masked whether it sits in the format string or in an argument, even one whose ``str``
    only shows it (a request object, a settings repr, an exception). The record is changed
    in place, so other handlers of the same record see the redacted version too.
    """

    _traceback_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not leak via handleError
            # The formatter will fail on this record and logging prints the message and its
            # arguments to stderr: make sure that printout is redacted as well.
            record.msg = redact(str(record.msg))
            if isinstance(record.args, Mapping):
                record.args = {key: _redact_arg(value) for key, value in record.args.items()}
            elif isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(value) for value in record.args)
        else:
            record.msg = redact(message)
            record.args = ()
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set, so the traceback is rendered once, here.
            record.exc_text = self._traceback_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# -- formatters ---------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """``asctime level logger: message`` plus `` room=… user=… session=… code=…`` when set.

    The finished line is redacted as a whole, so the context fields and anything a filter
    missed are covered too.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # The suffix goes here rather than into the format string so that it comes before a
        # traceback (appended after formatMessage) and is left out when empty.
        line = super().formatMessage(record)
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line += f" {_TEXT_LABELS[name]}={value}"
        return line

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Keys: ``ts`` (RFC 3339, UTC, milliseconds), ``level`` (lower case, as in the settings),
    ``logger``, ``message``, then ``room_id``, ``user_id``, ``session_id`` and ``code`` when
    set, ``exc`` (the traceback text) and ``stack`` when present. Each value is redacted
    before encoding (redacting the encoded line could swallow a quote and break the JSON).
    """

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, str] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = redact(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        # ensure_ascii=False keeps names in other scripts readable; newlines in messages and
        # tracebacks are escaped by the encoder, so a record stays one line.
        return json.dumps(entry, ensure_ascii=False)


# -- setup --------------------------------------------------------------------------------


class _Handler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs (its type marks it for replacement)."""


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(level: str, fmt: LogFormat = "auto", *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default: ``sys.stderr``) in the chosen format.

    Args:
        level: minimum level, a name such as ``info`` (any case).
        fmt: ``text``, ``json``, or ``auto``: text if ``stream`` is a terminal, else JSON.
        stream: where lines go; looked up at call time so that a replaced ``sys.stderr``
            (pytest's capture) is honoured.

    Calling it again (SIGHUP, tests) replaces the handler it installed before instead of
    adding a second one; handlers installed by others (pytest's) are left alone.

    Raises:
        ValueError: ``level`` names no log level, or ``fmt`` is not one of the three.
    """
    if fmt not in ("auto", "text", "json"):
        raise ValueError(f"unknown log format {fmt!r}")
    number = _level_number(level)
    target = sys.stderr if stream is None else stream
    as_json = fmt == "json" or (fmt == "auto" and not _is_tty(target))
    handler = _Handler(target)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    # Context first, so the redaction (and the formatter) see the final record.
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()  # closes the handler only: the stream belongs to the caller
    root.addHandler(handler)
    root.setLevel(number)

    debug = number <= logging.DEBUG
    for name in _QUIET_LOGGERS:
        # NOTSET: inherit the root level, so debug runs see everything.
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
    for name in _SILENT_LOGGERS:
        logging.getLogger(name).setLevel(_OFF)
    for name in _HEADER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
