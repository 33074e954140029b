"""Test helpers that ship with the package: drive a room engine without a server.

:class:`RoomHarness` plays the part of the trio shell for one room, the way
h11's ``ConnectionPair`` stands in for a network: it applies scripted
``(t, command)`` pairs, keeps every effect, honours ``WakeAt`` requests when
time is advanced, and checks the engine's invariants after every step. It
imports nothing but :mod:`syncplayd.core`, so developers can use it in a REPL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.room import (
    Broadcast,
    Command,
    Connect,
    ControlMode,
    Effect,
    Playback,
    Role,
    RoomState,
    SendTo,
    SyncConfig,
    Tick,
    WakeAt,
    apply,
    blocking,
    new_room,
    next_deadline,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Step:
    """One applied command: when, what, what came out and the room after it."""

    time: float
    command: Command
    effects: tuple[Effect, ...]
    state: RoomState


def assert_invariants(state: RoomState) -> None:
    """Check the engine's invariants (see "Theory of operation" in ``core.room._engine``).

    Raises:
        AssertionError: with the violated rule.
    """
    playback = state.playback
    _require(playback.version >= 0, "negative version")
    _require(playback.position >= 0, f"negative position {playback.position}")
    _require(playback.rate > 0, f"rate {playback.rate}")
    _require(
        state.resume_playing == (playback.state == "waiting"),
        f"resume_playing={state.resume_playing} in state {playback.state}",
    )
    if playback.state == "playing":
        _require(not blocking(state), f"playing while {blocking(state)} block")
    for session_id, session in state.sessions.items():
        _require(session_id == session.session_id, f"session filed under {session_id!r}")
        _require(session.buffering == (session.buffering_since is not None), repr(session))


def _require(condition: bool, message: str) -> None:
    # Not ``assert``: the checks must also run under ``python -O``.
    if not condition:
        raise AssertionError(message)


def of_type(items: Iterable[object], kind: type[T]) -> list[T]:
    """The items that are instances of ``kind``, in order."""
    return [item for item in items if isinstance(item, kind)]


class RoomHarness:
    """One room and a scripted clock.

    Args:
        state: the room to start from (default: :func:`~syncplayd.core.room.new_room`
            with the other arguments).
        room_id: the new room's id.
        playback: the new room's playback.
        config: the new room's tunables.
        control: the new room's control mode.
        check: check :func:`assert_invariants` and monotonic versions after every step.

    Attributes:
        state: the room now.
        now: the time of the last step.
        wake: the pending ``WakeAt`` time, if any (the latest one wins, as in the shell).
        steps: every applied command.
    """

    def __init__(
        self,
        state: RoomState | None = None,
        *,
        room_id: str = "room",
        playback: Playback | None = None,
        config: SyncConfig | None = None,
        control: ControlMode = "everyone",
        check: bool = True,
    ) -> None:
        self.state = new_room(room_id, playback, config, control) if state is None else state
        self.now = 0.0
        self.wake: float | None = None
        self.steps: list[Step] = []
        self.check = check

    def apply(self, t: float, command: Command) -> list[Effect]:
        """Apply ``command`` at time ``t`` (not before the previous step).

        Returns:
            Its effects.

        Raises:
            Refused: as :func:`~syncplayd.core.room.apply` does; nothing is recorded.
            ValueError: ``t`` goes back in time.
        """
        if t < self.now:
            raise ValueError(f"time goes forward: {t} < {self.now}")
        before = self.state
        state, effects = apply(before, command, t)
        if self.check:
            assert_invariants(state)
            _require(state.playback.version >= before.playback.version, "version went back")
        self.state, self.now = state, t
        for effect in effects:
            if isinstance(effect, WakeAt):
                self.wake = effect.time
        if isinstance(command, Tick) and not of_type(effects, WakeAt):
            self.wake = None
        self.steps.append(Step(t, command, tuple(effects), state))
        return effects

    def run(self, script: Iterable[tuple[float, Command]]) -> list[Effect]:
        """Apply each ``(t, command)`` in order, ticking at due wake-ups in between.

        Returns:
            The effects of the whole script, ticks included.
        """
        effects: list[Effect] = []
        for t, command in script:
            effects += self.advance(t)
            effects += self.apply(t, command)
        return effects

    def advance(self, t: float) -> list[Effect]:
        """Let time pass until ``t``, applying ``Tick`` at each due ``WakeAt`` on the way.

        Returns:
            The effects of those ticks.
        """
        effects: list[Effect] = []
        # A well-behaved engine never asks for the same wake-up twice in a row
        # without progress; the bound turns a busy loop into a test failure.
        for _ in range(10_000):
            if self.wake is None or self.wake > t:
                break
            effects += self.apply(max(self.wake, self.now), Tick())
        else:  # pragma: no cover - only an engine bug gets here
            raise AssertionError(f"wake-ups do not progress (stuck at {self.wake})")
        self.now = max(self.now, t)
        return effects

    def connect(
        self,
        t: float,
        session_id: str,
        *,
        user_id: str | None = None,
        name: str | None = None,
        role: Role = "member",
        resume: bool = False,
    ) -> list[Effect]:
        """Connect a session (user id and name default to the session id)."""
        user = session_id if user_id is None else user_id
        command = Connect(session_id, user, user if name is None else name, role, resume)
        return self.run([(t, command)])

    # -- reading -------------------------------------------------------------------------

    @property
    def effects(self) -> list[Effect]:
        """Every effect so far, in order."""
        return [effect for step in self.steps for effect in step.effects]

    def broadcasts(self, kind: type[T]) -> list[T]:
        """The broadcast messages of type ``kind`` so far."""
        return of_type((e.message for e in of_type(self.effects, Broadcast)), kind)

    def sent_to(self, session_id: str) -> list[protocol.ServerMessage]:
        """The messages sent to ``session_id`` alone so far."""
        return [e.message for e in of_type(self.effects, SendTo) if e.session_id == session_id]

    def presence(self, event: str | None = None) -> list[protocol.Presence]:
        """The presence broadcasts so far, optionally only those of ``event``."""
        found = self.broadcasts(protocol.Presence)
        return [p for p in found if event is None or p.event == event]

    def position(self, t: float | None = None) -> float:
        """The room's position at ``t`` (default: now)."""
        return position_at(self.state.playback, self.now if t is None else t)

    def deadline(self) -> float | None:
        """The room's earliest pending deadline."""
        return next_deadline(self.state)
