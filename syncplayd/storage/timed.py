"""A repository that reports how long every call of another one took.

It lives beside the :class:`~syncplayd.storage.base.Repository` contract because it is about
that contract (same arguments, same result, same exception, for every method), while what
becomes of the durations is the caller's business: it reports them to a
:class:`RepositoryObserver`, which the server's ``Metrics`` satisfies, so storage imports
nothing from the server.

Every method is one line, ``name = _timed(Repository.name)``: the forwarding and timing are
written once in :func:`_timed`, and each signature is taken from the protocol's own method
(through ``ParamSpec``), so a wrapper cannot disagree with the protocol about arguments or
result. Not ``__getattr__``, and not ``setattr`` in a loop: mypy would see neither, and the
``_conforms`` line at the bottom is what turns a method added to the protocol without a line
here into a type error (``tests/storage/test_timed.py`` checks the same at runtime).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

from syncplayd.storage.base import Repository

__all__ = ["OPERATIONS", "RepositoryObserver", "TimedRepository"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: The ``operation`` names a :class:`TimedRepository` reports: the protocol's methods.
OPERATIONS: Final = frozenset(
    name
    for name, member in vars(Repository).items()
    if not name.startswith("_") and callable(member)
)


class RepositoryObserver(Protocol):
    """Told the duration of every repository call (the server's ``Metrics`` is one)."""

    def observe_db(self, operation: str, seconds: float) -> None:
        """Record one call of ``operation`` (a Repository method name) that took ``seconds``.

        Called after failed calls too, on the task that made the call: keep it cheap, and
        never raise (the error would replace the call's own result or exception).
        """


def _timed(
    method: Callable[Concatenate[Repository, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[TimedRepository, _P], Coroutine[Any, Any, _T]]:
    """The :class:`TimedRepository` method standing for the protocol's ``method``."""
    operation = method.__name__

    # wraps() keeps the protocol's docstring, and through __wrapped__ its signature, for
    # help() and inspect.
    @functools.wraps(method)
    async def timed(self: TimedRepository, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        # Looked up on the wrapped repository at each call: ``method`` is the protocol's
        # empty stub, never the implementation.
        call: Callable[_P, Coroutine[Any, Any, _T]] = getattr(self.inner, operation)
        start = perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            self._observer.observe_db(operation, perf_counter() - start)

    timed.__qualname__ = f"TimedRepository.{operation}"
    return timed


class TimedRepository:
    """A :class:`~syncplayd.storage.base.Repository` that times every call of another one.

    Each method calls the wrapped repository's method of the same name with the same
    arguments, returns its result or lets its exception through unchanged, and reports the
    duration to ``observer`` either way (a failing or slow database is exactly when the
    numbers matter). The duration includes waiting for a connection or worker thread.

    Args:
        repo: the repository to time.
        observer: where the durations go.
    """

    def __init__(self, repo: Repository, observer: RepositoryObserver) -> None:
        self.inner = repo
        self._observer = observer

    # In the protocol's order, by its sections.
    ping = _timed(Repository.ping)
    aclose = _timed(Repository.aclose)

    create_room = _timed(Repository.create_room)
    get_room = _timed(Repository.get_room)
    list_rooms = _timed(Repository.list_rooms)
    update_room = _timed(Repository.update_room)
    update_playback = _timed(Repository.update_playback)
    end_room = _timed(Repository.end_room)
    delete_room = _timed(Repository.delete_room)

    get_queue = _timed(Repository.get_queue)
    save_queue = _timed(Repository.save_queue)
    set_item_duration = _timed(Repository.set_item_duration)

    add_participant = _timed(Repository.add_participant)
    admit_participant = _timed(Repository.admit_participant)
    get_participant = _timed(Repository.get_participant)
    get_standing = _timed(Repository.get_standing)
    owner_names = _timed(Repository.owner_names)
    list_participants = _timed(Repository.list_participants)
    update_participant = _timed(Repository.update_participant)
    record_presence = _timed(Repository.record_presence)
    remove_participant = _timed(Repository.remove_participant)
    transfer_ownership = _timed(Repository.transfer_ownership)

    set_restriction = _timed(Repository.set_restriction)
    get_restriction = _timed(Repository.get_restriction)
    list_restrictions = _timed(Repository.list_restrictions)
    delete_restriction = _timed(Repository.delete_restriction)
    purge_expired_restrictions = _timed(Repository.purge_expired_restrictions)

    create_chat_message = _timed(Repository.create_chat_message)
    list_chat_messages = _timed(Repository.list_chat_messages)
    get_chat_message = _timed(Repository.get_chat_message)
    delete_chat_message = _timed(Repository.delete_chat_message)

    log_events = _timed(Repository.log_events)
    list_events = _timed(Repository.list_events)
    list_events_after = _timed(Repository.list_events_after)

    create_invitation = _timed(Repository.create_invitation)
    get_invitation = _timed(Repository.get_invitation)
    list_invitations = _timed(Repository.list_invitations)
    consume_invitation = _timed(Repository.consume_invitation)
    release_invitation = _timed(Repository.release_invitation)
    delete_invitation = _timed(Repository.delete_invitation)
    list_inactive_rooms = _timed(Repository.list_inactive_rooms)
    purge_expired_invitations = _timed(Repository.purge_expired_invitations)
    purge_ended_rooms = _timed(Repository.purge_ended_rooms)
    purge_events = _timed(Repository.purge_events)

    upsert_node = _timed(Repository.upsert_node)
    touch_node = _timed(Repository.touch_node)
    remove_node = _timed(Repository.remove_node)
    list_nodes = _timed(Repository.list_nodes)
    set_room_owner = _timed(Repository.set_room_owner)
    clear_room_owner = _timed(Repository.clear_room_owner)
    clear_node_rooms = _timed(Repository.clear_node_rooms)
    room_owner = _timed(Repository.room_owner)
    room_owners = _timed(Repository.room_owners)

    charge_attempts = _timed(Repository.charge_attempts)
    refund_attempts = _timed(Repository.refund_attempts)
    purge_attempts = _timed(Repository.purge_attempts)


if TYPE_CHECKING:
    # mypy proves here that TimedRepository satisfies the protocol; without this line a
    # missing method would only show where a TimedRepository is passed as a Repository.
    _conforms: type[Repository] = TimedRepository
