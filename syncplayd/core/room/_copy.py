"""``evolve(obj, **changes)``: ``dataclasses.replace`` for the engine's records, cheaper.

Every heartbeat copies a :class:`~syncplayd.core.room.Session` and the
:class:`~syncplayd.core.room.RoomState`. ``dataclasses.replace`` walks ``fields()``,
reads every field by name into a dict of keywords and calls ``__init__`` with them,
which for a frozen class sets each field through ``object.__setattr__``: several
microseconds a copy, and more with cold caches (the daemon runs other work between
two frames). For a frozen slotted dataclass, :func:`evolve` calls a function made
once per class instead, with one keyword-only parameter per field: it builds the
object with ``object.__new__`` and writes each slot through its descriptor.

It makes what ``replace`` makes: every ``init`` field from ``changes`` or from
``obj``; ``init=False`` fields from their default (or factory), or left to
``__post_init__``, which runs as ``__init__`` would run it, so a class's
validation is never skipped; an unknown name is a ``TypeError``, an ``init=False``
one a ``ValueError``; an object of a subclass is copied as that class is. A class
it cannot copy that way (not a frozen slotted dataclass, ``InitVar`` fields, its
own ``__new__`` or ``__init__``) gets ``dataclasses.replace`` itself.

``evolve_session`` and ``evolve_room`` are the functions of those two classes,
called without :func:`evolve`'s look-up by class: the heartbeat's copies.

The type checker sees ``dataclasses.replace`` in all three (its plugin checks the
names and the types of ``changes``); the program runs the functions made here.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from types import MemberDescriptorType
from typing import TYPE_CHECKING, TypeVar, cast

from syncplayd.core.room._state import RoomState, Session

__all__ = ["evolve", "evolve_room", "evolve_session"]

_T = TypeVar("_T")
_Copier = Callable[..., object]

# The generated code's own names; a field may not be called so.
_PREFIX = "_dc_"


def _slot(cls: type, name: str) -> MemberDescriptorType | None:
    """The slot descriptor that stores ``name`` on ``cls``'s instances, if a slot does."""
    for klass in cls.__mro__:
        if name in vars(klass):
            found = vars(klass)[name]
            return found if isinstance(found, MemberDescriptorType) else None
    return None


def _own_init(cls: type) -> bool:
    # ``__init__`` as the dataclass decorator wrote it for ``cls`` (not overridden by a
    # subclass that is no dataclass of its own, nor written by hand with ``init=False``).
    params = vars(cls).get("__dataclass_params__")
    return (
        "__dataclass_fields__" in vars(cls)
        and params is not None
        and bool(params.init)
        and bool(params.frozen)
        and "__init__" in vars(cls)
    )


def _compile(cls: type) -> _Copier | None:
    """The copier of ``cls``, or ``None`` when only ``dataclasses.replace`` will do."""
    if not (dataclasses.is_dataclass(cls) and _own_init(cls)) or cls.__new__ is not object.__new__:
        return None
    fields = dataclasses.fields(cls)
    # ``fields()`` leaves out InitVars, which ``__init__`` takes and ``replace`` needs.
    if set(inspect.signature(cls).parameters) != {f.name for f in fields if f.init}:
        return None
    namespace: dict[str, object] = {
        f"{_PREFIX}new": object.__new__,
        f"{_PREFIX}cls": cls,
        f"{_PREFIX}missing": dataclasses.MISSING,
        f"{_PREFIX}type": type,
        f"{_PREFIX}other": _other,
    }
    missing = f"{_PREFIX}missing"
    params: list[str] = []
    # An object of a subclass (a test's, say) is copied as its own class is.
    given = ", ".join(f"{f.name}={f.name}" for f in fields)
    body = [
        f"    if {_PREFIX}type({_PREFIX}old) is not {_PREFIX}cls:",
        f"        return {_PREFIX}other({_PREFIX}old, {given})",
        f"    {_PREFIX}obj = {_PREFIX}new({_PREFIX}cls)",
    ]
    for f in fields:
        slot = _slot(cls, f.name)
        if slot is None or f.name.startswith(_PREFIX):
            return None
        params.append(f"{f.name}={missing}")
        namespace[f"{_PREFIX}set_{f.name}"] = slot.__set__
        write = f"    {_PREFIX}set_{f.name}({_PREFIX}obj, {{}})"
        if f.init:
            kept = f"{_PREFIX}old.{f.name}"
            body.append(write.format(f"{kept} if {f.name} is {missing} else {f.name}"))
            continue
        # Named in ``changes``, it is refused as ``replace`` refuses it.
        namespace[f"{_PREFIX}refusal_{f.name}"] = (
            f"field {f.name} is declared with init=False, it cannot be specified with replace()"
        )
        body.append(f"    if {f.name} is not {missing}:")
        body.append(f"        raise ValueError({_PREFIX}refusal_{f.name})")
        if f.default_factory is not dataclasses.MISSING:
            namespace[f"{_PREFIX}factory_{f.name}"] = f.default_factory
            body.append(write.format(f"{_PREFIX}factory_{f.name}()"))
        elif f.default is not dataclasses.MISSING:
            namespace[f"{_PREFIX}default_{f.name}"] = f.default
            body.append(write.format(f"{_PREFIX}default_{f.name}"))
    if hasattr(cls, "__post_init__"):
        body.append(f"    {_PREFIX}obj.__post_init__()")
    body.append(f"    return {_PREFIX}obj")
    signature = ", ".join([f"{_PREFIX}old", "/", "*", *params]) if params else f"{_PREFIX}old, /"
    source = f"def evolve_{cls.__name__}({signature}):\n" + "\n".join(body) + "\n"
    # Generated code, as ``dataclasses`` generates ``__init__``: the text is made only
    # of the class's own field names, never of data.
    exec(source, namespace)  # noqa: S102  # nosec B102
    return cast("_Copier", namespace[f"evolve_{cls.__name__}"])


def _other(obj: object, /, **changes: object) -> object:
    # The fields a copier was called with, for the copier of ``obj``'s own class.
    return _evolve(obj, **{k: v for k, v in changes.items() if v is not dataclasses.MISSING})


_COPIERS: dict[type, _Copier] = {}
_REPLACE: _Copier = dataclasses.replace


def _evolve(obj: _T, /, **changes: object) -> _T:
    """``dataclasses.replace(obj, **changes)``, made faster (see the module)."""
    cls = type(obj)
    copy = _COPIERS.get(cls)
    if copy is None:
        copy = _COPIERS[cls] = _compile(cls) or _REPLACE
    return cast("_T", copy(obj, **changes))


def _copier(cls: type[_T]) -> Callable[..., _T]:
    """What :func:`_evolve` calls for ``cls``'s objects, to call without the look-up."""
    copy = _COPIERS[cls] = _compile(cls) or _REPLACE
    return cast("Callable[..., _T]", copy)


if TYPE_CHECKING:
    from dataclasses import replace as evolve
    from dataclasses import replace as evolve_room
    from dataclasses import replace as evolve_session
else:
    evolve = _evolve
    # The two copies of every heartbeat (the session's, the room's in ``put``) call their
    # class's function directly: with cold caches, the frame of ``evolve`` between costs
    # a good part of a copy (measured: a third of it).
    evolve_room = _copier(RoomState)
    evolve_session = _copier(Session)
