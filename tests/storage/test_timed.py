"""TimedRepository: a wrapper for every protocol method, results and errors passed through."""

from __future__ import annotations

import inspect
import uuid
from typing import Any

import pytest

from syncplayd.storage import MemoryRepository, Repository, RoomNotFound, TimedRepository
from syncplayd.storage.records import Role
from syncplayd.storage.timed import OPERATIONS
from tests.storage.factories import at, new_room


class Observer:
    """Collects what a TimedRepository reports."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def observe_db(self, operation: str, seconds: float) -> None:
        self.seen.append((operation, seconds))

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.seen]


class Recorder:
    """A stand-in repository whose every method records its call and returns a sentinel."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return ("result of", name)

        return method


def protocol_methods() -> list[str]:
    """The Repository protocol's methods, read from the protocol class itself."""
    return sorted(
        name
        for name, member in vars(Repository).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(member)
    )


def test_operations_are_the_protocol_methods() -> None:
    assert sorted(OPERATIONS) == protocol_methods()
    assert len(OPERATIONS) > 20


async def test_every_protocol_method_is_wrapped_and_timed() -> None:
    observer, inner = Observer(), Recorder()
    timed = TimedRepository(inner, observer)
    for name in protocol_methods():
        # Defined on the class itself: a missing method must not fall through to anything.
        assert name in vars(TimedRepository), f"TimedRepository does not wrap {name}"
        protocol_sig = inspect.signature(getattr(Repository, name))
        assert inspect.signature(getattr(TimedRepository, name)) == protocol_sig, name

        # Call with a distinct object per parameter; the inner method must get the same ones,
        # and be the method of the same name.
        args: list[object] = []
        kwargs: dict[str, object] = {}
        for param in list(protocol_sig.parameters.values())[1:]:
            token = object()
            if param.kind is param.KEYWORD_ONLY:
                kwargs[param.name] = token
            else:
                args.append(token)
        inner.calls.clear()
        observer.seen.clear()
        result = await getattr(timed, name)(*args, **kwargs)

        assert inner.calls == [(name, tuple(args), kwargs)], name
        assert result == ("result of", name)
        assert observer.operations() == [name]


async def test_results_pass_through() -> None:
    observer, inner = Observer(), MemoryRepository()
    repo: Repository = TimedRepository(inner, observer)
    room = await repo.create_room(new_room(owner_name="Ann"))
    assert await repo.get_room(room.id) == await inner.get_room(room.id)
    assert await repo.get_room(uuid.uuid4()) is None
    participant, added = await repo.add_participant(room.id, uuid.uuid4(), "Bo", Role.MEMBER, at(1))
    assert added and participant.user_name == "Bo"
    members = await repo.list_participants(room.id, connected_only=False)
    assert [p.user_name for p in members] == ["Ann", "Bo"]
    await repo.ping()

    assert observer.operations() == [
        "create_room",
        "get_room",
        "get_room",
        "add_participant",
        "list_participants",
        "ping",
    ]
    assert all(seconds >= 0 for _, seconds in observer.seen)


async def test_exceptions_pass_through_and_are_still_timed() -> None:
    observer = Observer()
    repo = TimedRepository(MemoryRepository(), observer)
    with pytest.raises(RoomNotFound):
        await repo.add_participant(uuid.uuid4(), uuid.uuid4(), "Bo", Role.MEMBER, at(0))
    assert observer.operations() == ["add_participant"]
    assert isinstance(repo.inner, MemoryRepository)


def test_wrappers_keep_the_protocol_docs() -> None:
    assert TimedRepository.get_room.__doc__ == Repository.get_room.__doc__
    assert TimedRepository.get_room.__qualname__ == "TimedRepository.get_room"
