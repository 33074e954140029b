"""The schema as a flat table of leaves, and how one value is parsed and checked.

Built once at import by walking the dataclasses of ``_schema``: a leaf's type annotation picks
its parser, its ``Meta`` its constraints. ``SCHEMA`` and ``ENV_NAMES`` are the public views.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, TypeAlias

from ._schema import META_KEY, Meta, Section, Settings
from ._values import Invalid, Secret, SettingValue, describe

_Kind: TypeAlias = Literal["bool", "int", "float", "str", "secret", "path", "list", "choice"]


@dataclass(frozen=True, slots=True)
class ValueType:
    """A leaf's type, read from its annotation; it selects the parser and the messages."""

    kind: _Kind
    optional: bool = False
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        base = {
            "bool": "boolean",
            "int": "integer",
            "float": "number",
            "str": "string",
            "secret": "secret string",
            "path": "absolute path",
            "list": "list of strings",
            "choice": "one of " + "/".join(self.choices),
        }[self.kind]
        return f"{base} or null" if self.optional else base

    @property
    def noun(self) -> str:
        """The expected thing, for "expected <noun>, got ..." messages."""
        return {
            "bool": "a boolean",
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "secret": "a string",
            "path": "an absolute path",
            "list": "a list of strings",
            "choice": "one of " + ", ".join(self.choices),
        }[self.kind]


def _type_of(hint: object) -> ValueType:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return dataclasses.replace(_type_of(inner), optional=True)
    simple: dict[object, _Kind] = {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        Secret: "secret",
        Path: "path",
    }
    if hint in simple:
        return ValueType(simple[hint])
    if origin is tuple and args == (str, ...):
        return ValueType("list")
    if origin is Literal and all(isinstance(a, str) for a in args):
        return ValueType("choice", choices=tuple(str(a) for a in args))
    raise TypeError(f"unsupported setting type {hint!r}")  # a schema bug, found at import


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One leaf of the schema, for docs, tests and ``config`` commands.

    Attributes:
        path: Attribute path, which is also the YAML path, e.g. ``("server", "listen")``.
        type: Human-readable type, e.g. ``"integer"`` or ``"string or null"``.
        default: The default value; None also for defaults derived from the environment
            (see ``derived``).
        env: The environment variable that sets it.
        description: One line of help.
        derived: The default is computed at load time; ``default_text`` says how.
        default_text: The default as shown in docs (YAML syntax, or the derivation rule).
        constraints: Allowed range as text (e.g. ``"1..100"``), empty if none.
        secret: Whether the value is masked by ``dump_settings``.
    """

    path: tuple[str, ...]
    type: str
    default: SettingValue
    env: str
    description: str
    derived: bool
    default_text: str
    constraints: str
    secret: bool

    @property
    def key(self) -> str:
        """The dotted path, as used in YAML docs and overrides."""
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Leaf:
    """A leaf as the loader needs it (``SettingSpec`` is the public, documentation view)."""

    path: tuple[str, ...]
    type: ValueType
    meta: Meta
    default: SettingValue
    derived: bool


def _walk_schema(
    cls: type[Section], prefix: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], type[Section] | Leaf]]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        hint = hints[f.name]
        if isinstance(hint, type) and issubclass(hint, Section):
            yield path, hint
            yield from _walk_schema(hint, path)
            continue
        meta = f.metadata.get(META_KEY)
        if not isinstance(meta, Meta):
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with _setting()")
        derived = f.default is dataclasses.MISSING
        default = None if derived else typing.cast("SettingValue", f.default)
        yield path, Leaf(path, _type_of(hint), meta, default, derived)


SECTIONS: Final[dict[tuple[str, ...], type[Section]]] = {(): Settings}
LEAVES: Final[dict[tuple[str, ...], Leaf]] = {}
for _path, _node in _walk_schema(Settings, ()):
    if isinstance(_node, Leaf):
        LEAVES[_path] = _node
    else:
        SECTIONS[_path] = _node
del _path, _node

# (value path, file path) for every secret with a *_file spelling.
FILE_PAIRS: Final = tuple(
    ((*leaf.path[:-1], leaf.meta.file_for), leaf.path)
    for leaf in LEAVES.values()
    if leaf.meta.file_for is not None
)
PAIR_OF: Final = {p: pair for pair in FILE_PAIRS for p in pair}


def fmt_num(x: float) -> str:
    """Show 24.0 as "24" (how the operator wrote it, usually) and 0.25 as "0.25"."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _range_text(meta: Meta) -> str:
    if meta.ge is not None and meta.le is not None:
        return f"{fmt_num(meta.ge)}..{fmt_num(meta.le)}"
    parts = []
    if meta.ge is not None:
        parts.append(f">={fmt_num(meta.ge)}")
    if meta.gt is not None:
        parts.append(f">{fmt_num(meta.gt)}")
    if meta.le is not None:
        parts.append(f"<={fmt_num(meta.le)}")
    return ", ".join(parts)


def yaml_literal(value: SettingValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    # Strings and paths: a JSON string is a valid YAML double-quoted scalar.
    return json.dumps(str(value))


SCHEMA: Final[tuple[SettingSpec, ...]] = tuple(
    SettingSpec(
        path=leaf.path,
        type=leaf.type.label,
        default=leaf.default,
        env=leaf.meta.env,
        description=leaf.meta.doc,
        derived=leaf.derived,
        default_text=leaf.meta.default_doc or yaml_literal(leaf.default),
        constraints=_range_text(leaf.meta),
        secret=leaf.type.kind == "secret" or leaf.meta.mask is not None,
    )
    for leaf in LEAVES.values()
)
"""Every setting, in declaration order (the order of ``config.example.yaml``)."""

ENV_NAMES: Final[Mapping[str, str]] = types.MappingProxyType(
    {spec.key: spec.env for spec in SCHEMA}
)
"""Dotted path -> environment variable name, for every setting."""

BY_ENV: Final = {leaf.meta.env: leaf for leaf in LEAVES.values()}


_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def from_yaml(t: ValueType, raw: object) -> SettingValue:
    """Check a YAML value's type exactly (no coercion from strings)."""
    if raw is None and t.optional:
        return None
    got = describe(raw, hide=t.kind == "secret")
    if t.kind == "bool" and isinstance(raw, bool):
        return raw
    if t.kind == "int" and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if t.kind == "float" and isinstance(raw, int | float) and not isinstance(raw, bool):
        return _finite(raw, got)
    if t.kind == "list" and isinstance(raw, list):
        if all(isinstance(item, str) for item in raw):
            return tuple(raw)
        raise Invalid(f"expected {t.noun}, got a list with {describe(_first_non_str(raw))}")
    if isinstance(raw, str) and t.kind in ("str", "secret", "path", "choice"):
        return _from_str(t, raw)
    raise Invalid(f"expected {t.noun}, got {got}")


def _first_non_str(items: list[object]) -> object:
    return next(item for item in items if not isinstance(item, str))


def from_text(t: ValueType, text: str) -> SettingValue:
    """Parse an environment variable or override value."""
    if text == "" and t.optional:
        return None
    got = describe(text, hide=t.kind == "secret")
    stripped = text.strip()
    if t.kind == "bool":
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise Invalid(f"expected a boolean (true/false, yes/no, on/off, 1/0), got {got}")
    if t.kind == "int":
        if _INT_RE.fullmatch(stripped):
            if len(stripped) > 4000:  # int() refuses longer digit strings (CVE-2020-10735)
                raise Invalid("the number is too large")
            return int(stripped)
        raise Invalid(f"expected an integer, got {got}")
    if t.kind == "float":
        if _FLOAT_RE.fullmatch(stripped):
            return _finite(float(stripped), got)
        if stripped.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise Invalid(f"expected a finite number, got {got}")
        raise Invalid(f"expected a number, got {got}")
    if t.kind == "list":
        return tuple(item.strip() for item in text.split(",") if item.strip())
    return _from_str(t, stripped if t.kind == "choice" else text)


def _from_str(t: ValueType, text: str) -> SettingValue:
    try:
        text.encode()
    except UnicodeEncodeError:
        # Lone surrogates: os.environ's stand-ins for bytes that are not UTF-8, or a YAML
        # "\ud800" escape. Nothing downstream (a JWT key, a path, a header) can encode them.
        raise Invalid(
            f"expected UTF-8 text, got {describe(text, hide=t.kind == 'secret')}"
        ) from None
    if t.kind == "secret":
        return Secret(text)
    if t.kind == "path":
        # Relative paths would depend on the daemon's working directory, which under systemd is
        # "/"; demand absolute ones so the meaning does not change with how it is started.
        if not text.startswith("/") or "\0" in text:
            raise Invalid(f"expected an absolute path, got {describe(text)}")
        return Path(text)
    if t.kind == "choice":
        lowered = text.lower()
        if lowered not in t.choices:
            raise Invalid(f"expected {t.noun}, got {describe(text)}")
        return lowered
    return text


def _finite(raw: int | float, got: str) -> float:
    try:
        value = float(raw)
    except OverflowError:  # an int beyond float range
        value = math.inf
    if not math.isfinite(value):
        raise Invalid(f"expected a finite number, got {got}")
    return value


def check_value(leaf: Leaf, value: SettingValue) -> SettingValue:
    """Apply the declared constraints (range, check function, minimum secret length)."""
    meta = leaf.meta
    if isinstance(value, int | float) and not isinstance(value, bool):
        too_low = (meta.ge is not None and value < meta.ge) or (
            meta.gt is not None and value <= meta.gt
        )
        too_high = meta.le is not None and value > meta.le
        if too_low or too_high:
            got = fmt_num(value) if isinstance(value, float) else describe(value)
            raise Invalid(f"{_range_message(meta)}, got {got}")
    if meta.check is not None:
        if isinstance(value, str):
            value = meta.check(value)
        elif isinstance(value, tuple):
            value = tuple(meta.check(item) for item in value)
    if (
        isinstance(value, Secret)
        and meta.min_bytes is not None
        and len(value.reveal().encode()) < meta.min_bytes
    ):
        raise Invalid(f"the secret must be at least {meta.min_bytes} bytes long")
    return value


def _range_message(meta: Meta) -> str:
    if meta.ge is not None and meta.le is not None:
        return f"must be between {fmt_num(meta.ge)} and {fmt_num(meta.le)}"
    parts = []
    if meta.ge is not None:
        parts.append(f"at least {fmt_num(meta.ge)}")
    if meta.gt is not None:
        parts.append(f"greater than {fmt_num(meta.gt)}")
    if meta.le is not None:
        parts.append(f"at most {fmt_num(meta.le)}")
    return "must be " + " and ".join(parts)
