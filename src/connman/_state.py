"""The connection state machine: one transition table, no IO, no clock.

Rule 1 (after h11): everything that affects the state machine and state transitions must live here in
this file.

Theory of operation
-------------------
A managed connection is always in one of five states:

- CONNECTING: an attempt is under way (name resolution, TCP connect, TLS handshake).
- CONNECTED: the transport is up; `on_connect` (or the resume callable) has been called.
- WAITING: the last attempt failed or the connection was lost; a retry timer is armed.
- FAILED: `max_attempts` consecutive attempts failed, the connection stayed down longer than
  `give_up_after` seconds, or `retry_if` said no; nothing is armed. `reconnect()` revives it.
- CLOSED: the application called `disconnect()`. Terminal: nothing leaves CLOSED.

The driver (`connection.py`) feeds in what happened, as events (`ConnectSucceeded`, `ConnectFailed`,
`ConnectionLost`, `RetryDue`, `DisconnectRequested`, `ReconnectRequested`), and executes the actions that
`ConnectionMachine.handle()` hands back, in order (`StartConnect`, `NotifyConnected`, `NotifyReset`,
`ScheduleRetry`, `CancelRetry`, `AbortConnect`, `CloseTransport`, `NotifyGaveUp`). Time comes in as the
`now` field of the events that need it, so the machine can be driven exhaustively in tests without a
loop, a socket or a clock.

Two counters drive the retries, and keeping them apart is the point of this module:

- `failures` counts consecutive attempts that never connected; it is what `max_attempts` limits, and a
  successful connect resets it.
- `backoff_attempt` counts waits since the last *stable* connection. It resets only when a connection
  that stayed up at least `Backoff.min_uptime` is lost. The original reset its delay on every TCP
  connect, so a server that accepts and closes at once got 94 reconnects in 2 s, forever; here the
  delays keep growing to the cap until a connection proves stable.

`on_reset` (`NotifyReset`) fires once per loss of an *established* connection: never for an attempt that
did not connect (the original fired it for every failed attempt) and never for the application's own
`disconnect()`. `reconnect()` on a connected connection is a loss the application asked for: `on_reset`
fires and the next attempt starts at once, with no wait.

Events that arrive in a state that does not expect them are ignored in CLOSED (a late timer or a
transport closing after `disconnect()` is normal) and are a driver bug anywhere else.
"""

from __future__ import annotations

import enum
import os
import random
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._backoff import Backoff
from ._causes import Cause, classify

__all__ = [
    "TRANSITIONS",
    "AbortConnect",
    "Action",
    "CancelRetry",
    "CloseTransport",
    "ConnectFailed",
    "ConnectSucceeded",
    "ConnectionLost",
    "ConnectionMachine",
    "DisconnectRequested",
    "Event",
    "NotifyConnected",
    "NotifyGaveUp",
    "NotifyReset",
    "ReconnectRequested",
    "RetryDue",
    "ScheduleRetry",
    "StartConnect",
    "State",
]


class State(enum.Enum):
    """Where a managed connection is in its life; see the module docstring."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"
    FAILED = "failed"
    CLOSED = "closed"

    def __repr__(self) -> str:
        return f"State.{self.name}"


# ---- events: what happened (inputs) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectSucceeded:
    """The attempt connected (TCP, and TLS if asked)."""

    now: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectFailed:
    """The attempt failed before connecting: refused, unresolvable, timed out, TLS handshake, ...

    `retry` is the answer of the application's `retry_if` (True without one): False gives up at once.
    """

    error: BaseException
    now: float
    retry: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionLost:
    """An established connection went away; `error` is None for a clean EOF.

    `alive_until` is the last time the connection is known to have been alive, when a half-open
    detector ended it (it died silently before it was dropped); None means `now`. The flap guard
    counts only that time as uptime. `retry` is the answer of `retry_if`, as for `ConnectFailed`.
    """

    error: BaseException | None
    now: float
    alive_until: float | None = None
    retry: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDue:
    """The retry timer fired."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DisconnectRequested:
    """The application called `disconnect()`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectRequested:
    """The application called `reconnect()`: drop the connection if any and connect now."""


Event: TypeAlias = (
    ConnectSucceeded | ConnectFailed | ConnectionLost | RetryDue | DisconnectRequested | ReconnectRequested
)

# ---- actions: what the driver must do (outputs) ----------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartConnect:
    """Start a connection attempt (resolve the name anew, connect, handshake)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyConnected:
    """Call `on_connect`, or the callable `on_reset` returned."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyReset:
    """Call `on_reset`: an established connection was lost."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRetry:
    """Arm the retry timer; `RetryDue` is expected after `delay` seconds."""

    delay: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRetry:
    """Disarm the retry timer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortConnect:
    """Cancel the attempt under way; no event is expected from it any more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseTransport:
    """Close the current transport; no event is expected from it any more."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifyGaveUp:
    """Call the give-up callback: `max_attempts` attempts failed, `give_up_after` ran out, or
    `retry_if` said no.

    `reason` is "max_attempts", "give_up_after" or "retry_if"; `attempts` the consecutive failed
    attempts (0 when `retry_if` refused to retry a lost connection). `error` is the last error; after a
    clean EOF (no error) that `retry_if` refused to retry, an `EOFError` saying so.
    """

    error: BaseException
    reason: str
    attempts: int


Action: TypeAlias = (
    StartConnect
    | NotifyConnected
    | NotifyReset
    | ScheduleRetry
    | CancelRetry
    | AbortConnect
    | CloseTransport
    | NotifyGaveUp
)

#: The jitter's randomness, shared by every connection of the process: a generator per connection
#: would cost 2.5 KB each. Reseeded in a forked child, so that forked workers do not retry in step.
SHARED_RNG: Final = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=SHARED_RNG.seed)

CONNECTING: Final = State.CONNECTING
CONNECTED: Final = State.CONNECTED
WAITING: Final = State.WAITING
FAILED: Final = State.FAILED
CLOSED: Final = State.CLOSED

#: state -> event type -> next state. A pair missing from the table is not expected in that state.
#: Two transitions are conditional: `ConnectFailed` goes to FAILED instead of WAITING once
#: `max_attempts` consecutive attempts have failed, once the next attempt would start more than
#: `give_up_after` seconds after the connection went down (see `ConnectionMachine._give_up`), or when
#: `retry_if` said no (`retry=False`); and `ConnectionLost` goes to FAILED instead of WAITING when
#: `retry_if` said no.
TRANSITIONS: Final[dict[State, dict[type[Event], State]]] = {
    CONNECTING: {
        ConnectSucceeded: CONNECTED,
        ConnectFailed: WAITING,
        DisconnectRequested: CLOSED,
        ReconnectRequested: CONNECTING,
    },
    CONNECTED: {
        ConnectionLost: WAITING,
        DisconnectRequested: CLOSED,
        ReconnectRequested: CONNECTING,
    },
    WAITING: {
        RetryDue: CONNECTING,
        DisconnectRequested: CLOSED,
        ReconnectRequested: CONNECTING,
    },
    FAILED: {
        DisconnectRequested: CLOSED,
        ReconnectRequested: CONNECTING,
    },
    CLOSED: {},
}


class ConnectionMachine:
    """The pure state machine of one managed connection.

    Args:
        backoff: The delay policy.
        max_attempts: Consecutive failed attempts before giving up; `None` retries forever.
        give_up_after: Seconds the connection may stay down (from the loss, or from the first failed
            attempt) before giving up; no attempt starts later than that. `None`: no deadline.
        rng: Randomness for the backoff jitter; pass `random.Random(seed)` to reproduce a schedule.
    """

    __slots__ = (
        "_delay",
        "backoff",
        "backoff_attempt",
        "connected_at",
        "connects",
        "down_since",
        "failed_attempts",
        "failures",
        "give_up_after",
        "give_up_reason",
        "last_cause",
        "last_error",
        "last_outage",
        "max_attempts",
        "resets",
        "rng",
        "state",
    )

    def __init__(
        self,
        backoff: Backoff,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        give_up_after: float | None = None,
    ) -> None:
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.give_up_after = give_up_after
        self.down_since: float | None = None
        self.rng = rng if rng is not None else SHARED_RNG
        # A new connection starts connecting at once: the driver executes `StartConnect` on start.
        self.state = CONNECTING
        self.failures = 0
        self.backoff_attempt = 0
        self._delay: float | None = None
        self.connected_at: float | None = None
        self.connects = 0
        self.resets = 0
        self.failed_attempts = 0
        self.last_error: BaseException | None = None
        self.last_cause: Cause | None = None
        self.last_outage: float | None = None
        #: Why the machine is FAILED: "max_attempts", "give_up_after" or "retry_if"; None otherwise.
        self.give_up_reason: str | None = None

    def handle(self, event: Event) -> list[Action]:
        """Apply `event` and return the actions the driver must carry out, in order.

        Raises:
            RuntimeError: The event is not expected in the current state (a driver bug), except in
                CLOSED, where every event is ignored.
        """
        state = self.state
        next_state = TRANSITIONS[state].get(type(event))
        if next_state is None:
            if state is CLOSED:
                return []
            raise RuntimeError(f"can't handle {type(event).__name__} in state {state.name}")
        actions: list[Action]
        match event:
            case ConnectSucceeded(now=now):
                self.failures = 0
                if self.down_since is not None:
                    self.last_outage = now - self.down_since
                self.down_since = None
                self.connects += 1
                self.connected_at = now
                actions = [NotifyConnected()]
            case ConnectFailed(error=error, now=now, retry=retry):
                self.failures += 1
                self.failed_attempts += 1
                self.last_error = error
                self.last_cause = classify(error, connected=False)
                if self.down_since is None:
                    self.down_since = now
                delay = self._next_delay()
                reason = "retry_if" if not retry else self._give_up(now + delay)
                if reason is not None:
                    next_state = FAILED
                    self.give_up_reason = reason
                    actions = [NotifyGaveUp(error=error, reason=reason, attempts=self.failures)]
                else:
                    actions = [self._schedule_retry(delay)]
            case ConnectionLost(error=error, now=now, alive_until=alive_until, retry=retry):
                self.resets += 1
                self.last_error = error
                self.last_cause = classify(error, connected=True)
                self.down_since = now
                self._lost(now if alive_until is None else min(alive_until, now))
                if retry:
                    actions = [NotifyReset(), self._schedule_retry()]
                else:
                    next_state = FAILED
                    self.give_up_reason = "retry_if"
                    reason_error = error if error is not None else EOFError("the peer closed the connection")
                    actions = [NotifyReset(), NotifyGaveUp(error=reason_error, reason="retry_if", attempts=0)]
            case RetryDue():
                actions = [StartConnect()]
            case DisconnectRequested():
                self.give_up_reason = None
                actions = [self._stop_current()] if state is not FAILED else []
            case ReconnectRequested():
                if state is CONNECTING:
                    actions = []  # already on its way
                elif state is CONNECTED:
                    self.resets += 1
                    self.last_error = None
                    self.last_cause = Cause.RECONNECT
                    self._lost(None)
                    actions = [CloseTransport(), NotifyReset(), StartConnect()]
                else:  # WAITING or FAILED
                    self.failures = 0
                    self.give_up_reason = None
                    self.down_since = None  # the application starts a fresh deadline
                    actions = [CancelRetry(), StartConnect()] if state is WAITING else [StartConnect()]
        self.state = next_state
        return actions

    def _give_up(self, next_attempt_at: float) -> str | None:
        if self.max_attempts is not None and self.failures >= self.max_attempts:
            return "max_attempts"
        deadline = self.give_up_after
        if (
            deadline is not None
            and self.down_since is not None
            and next_attempt_at - self.down_since > deadline
        ):
            return "give_up_after"
        return None

    def _lost(self, alive_until: float | None) -> None:
        # Reset the backoff only for a connection that proved stable: alive for `min_uptime`, up to
        # its last sign of life (`alive_until` None: the application asked to reconnect, which says
        # nothing about the peer; keep the count).
        if alive_until is not None and self.connected_at is not None:
            if alive_until - self.connected_at >= self.backoff.min_uptime:
                self.backoff_attempt = 0
                self._delay = None
        self.connected_at = None

    def _next_delay(self) -> float:
        return self.backoff.delay(self.backoff_attempt, self.rng, self._delay)

    def _schedule_retry(self, delay: float | None = None) -> ScheduleRetry:
        if delay is None:
            delay = self._next_delay()
        self.backoff_attempt += 1
        self._delay = delay
        return ScheduleRetry(delay=delay)

    def _stop_current(self) -> Action:
        if self.state is CONNECTING:
            return AbortConnect()
        if self.state is CONNECTED:
            self.connected_at = None
            return CloseTransport()
        return CancelRetry()
