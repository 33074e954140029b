"""``evolve``: the engine's ``dataclasses.replace``, made for its frozen slotted records.

It must make exactly what ``replace`` makes, field by field, for every record the
engine copies; refuse what ``replace`` refuses; and never skip a ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core.room import Playback, RoomState, Session, SyncConfig, new_room
from syncplayd.core.room._copy import _compile, _evolve, evolve, evolve_room, evolve_session
from tests.core.roomkit import ANN, BOB, PLAYING, room

# Values of every type the records' fields hold (the copy never looks at them).
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.tuples(st.floats(allow_nan=False)),
)


def same(a: object, b: object) -> None:
    """``a`` and ``b`` are of one class and hold the very same values in every field."""
    assert type(a) is type(b)
    assert dataclasses.is_dataclass(a)
    for f in dataclasses.fields(a):
        assert getattr(a, f.name) is getattr(b, f.name), f.name


RECORDS = [ANN, Playback("playing", 3.0, 1.25, 99.0, 7, "Bob", ended=False)]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
@given(data=st.data())
def test_every_field_as_replace_makes_it(record: Any, data: st.DataObject) -> None:
    names = [f.name for f in dataclasses.fields(record)]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True))
    changes = {name: data.draw(values) for name in chosen}
    expected = dataclasses.replace(record, **changes)
    copied = evolve(record, **changes)
    same(copied, expected)
    assert copied is not record
    if isinstance(record, Session):
        same(evolve_session(record, **changes), expected)
    same(record, dataclasses.replace(record))  # the original is untouched


@given(
    st.sampled_from(["paused", "playing"]),
    st.booleans(),
    st.sampled_from(["everyone", "moderators"]),
    st.sampled_from(["always", "policy", "never"]),
    st.none() | st.floats(1.0, 1e4),
    st.none() | st.text(max_size=3),
    st.none() | st.floats(0.0, 1e4),
)
def test_a_room_as_replace_makes_it(
    state: str,
    resume: bool,
    control: str,
    policy: str,
    duration: float | None,
    item: str | None,
    end_wait: float | None,
) -> None:
    base = room(PLAYING, ANN, BOB)
    changes: dict[str, Any] = {
        "playback": Playback(state, 1.0),  # type: ignore[arg-type]
        "resume_playing": resume,
        "control": control,
        "wait_for_slow_members": policy,
        "duration": duration,
        "item_id": item,
        "end_wait_until": end_wait,
    }
    for name, value in changes.items():
        expected = dataclasses.replace(base, **{name: value})
        for copy in (evolve, evolve_room):
            copied = copy(base, **{name: value})
            assert copied == expected
            same(copied, expected)
    # The derived table is the one ``__post_init__`` derives: the same table, shared.
    assert evolve(base, control="moderators").table is base.table


def test_a_room_with_other_sessions_gets_their_table() -> None:
    base = room(PLAYING, ANN)
    for sessions in ({"bob": BOB}, MappingProxyType({"bob": BOB}), base.table.put(BOB)):
        expected = dataclasses.replace(base, sessions=sessions)
        for copied in (evolve(base, sessions=sessions), evolve_room(base, sessions=sessions)):
            assert copied == expected
            assert list(copied.table) == list(copied.sessions) == list(sessions)
            assert isinstance(copied.sessions, MappingProxyType)
            assert copied.table.tally == expected.table.tally
            # The view shows the table itself, not a copy of it.
            assert copied.sessions.copy() is copied.table
    # A table given is taken as it is (``put``'s case).
    table = base.table.put(BOB)
    assert evolve_room(base, sessions=table).table is table


def test_unknown_names_are_refused_as_replace_refuses_them() -> None:
    records: list[Any] = [ANN, PLAYING, new_room("r"), SyncConfig()]
    for record in records:
        with pytest.raises(TypeError):
            dataclasses.replace(record, nope=1)
        with pytest.raises(TypeError, match="nope"):
            evolve(record, nope=1)
        with pytest.raises(TypeError):
            evolve(record, 1)  # type: ignore[call-arg]


def test_a_field_not_in_init_is_refused_as_replace_refuses_it() -> None:
    state = new_room("r")
    with pytest.raises(ValueError, match="init=False") as expected:
        dataclasses.replace(state, table=state.table)
    with pytest.raises(ValueError, match="init=False") as got:
        evolve(state, table=state.table)
    assert str(got.value) == str(expected.value)


def test_post_init_validation_still_runs() -> None:
    with pytest.raises(ValueError, match="min_lead"):
        evolve(SyncConfig(), min_lead=5.0)
    with pytest.raises(ValueError, match="threshold_seconds"):
        evolve(SyncConfig(), threshold_seconds=math.nan)
    assert evolve(SyncConfig(), max_lead=3.0) == SyncConfig(max_lead=3.0)


def test_the_engines_records_get_the_fast_copy() -> None:
    for cls in (Session, Playback, RoomState, SyncConfig):
        assert _compile(cls) is not None, cls


# -- classes it does not compile for, and fields not set by __init__ ------------------------


@dataclass(frozen=True, slots=True)
class _Defaults:
    a: int
    b: list[int] = field(default_factory=list)
    c: int = field(init=False, default=7)
    d: list[int] = field(init=False, default_factory=lambda: [1])
    e: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "e", self.a * 2)


@dataclass(frozen=True)
class _NoSlots:
    a: int
    b: int = 0


@dataclass(frozen=True, slots=True)
class _WithInitVar:
    a: int
    scale: dataclasses.InitVar[int] = 1
    b: int = field(init=False, default=0)

    def __post_init__(self, scale: int) -> None:
        object.__setattr__(self, "b", self.a * scale)


@dataclass(slots=True)
class _NotFrozen:
    a: int


def test_fields_outside_init_are_made_as_init_makes_them() -> None:
    record = _Defaults(3, [4])
    copied = evolve(record, a=5)
    expected = dataclasses.replace(record, a=5)
    assert (copied.a, copied.b, copied.c, copied.d, copied.e) == (5, [4], 7, [1], 10)
    assert copied == expected
    assert copied.b is record.b  # kept, not made again by its factory
    assert copied.d is not record.d  # made again, as __init__ makes it


@pytest.mark.parametrize("record", [_NoSlots(1), _WithInitVar(2, 3), _NotFrozen(1)])
def test_other_classes_are_left_to_replace(record: Any) -> None:
    assert _compile(type(record)) is None
    assert _evolve(record, a=4) == dataclasses.replace(record, a=4)


class _Counted(Session):
    """A test's subclass (as ``test_room_scaling.Watched``): not a dataclass of its own."""

    __slots__ = ()


def test_an_object_of_a_subclass_stays_of_its_class() -> None:
    record = _Counted("s1", "u1", "U", rtt=0.2)
    expected = dataclasses.replace(record, rtt=0.3)
    for copied in (evolve(record, rtt=0.3), evolve_session(record, rtt=0.3)):
        assert type(copied) is _Counted
        assert copied == expected
        same(copied, expected)
    with pytest.raises(TypeError):
        evolve_session(record, nope=1)  # type: ignore[call-arg]


def test_not_a_dataclass_is_refused_as_replace_refuses_it() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        _evolve(3)
