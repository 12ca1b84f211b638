"""The events of a `ConnectionManager`: what happened to its connections and pools, as typed values.

Subscribe with `ConnectionManager.subscribe(listener)`, which returns the function that unsubscribes.
Every event is a frozen dataclass with keyword-only fields; all carry the `conn` it is about, its
`endpoint` and the time `at` (`time.monotonic()`, seconds). One connection's life reads:

    AttemptStarted -> Connected -> Lost -> RetryScheduled -> AttemptStarted -> AttemptFailed
        -> RetryScheduled -> ... -> Connected -> ... -> Closed

and an attempt or a loss that is not retried (`max_attempts`, `give_up_after`, `retry_if`) is followed
by `Failed` instead of `RetryScheduled`. Pools add `MemberAdded` / `MemberRemoved`.

Events are per state change, never per read or write, and are built only while somebody listens
(`Closed` excepted: the registry itself learns from it that a connection is gone).
A listener runs in the thread where the event happened: the connection's event loop thread (connman's
own loop thread for sync users) for connection events, the calling thread for `MemberAdded` and
`MemberRemoved`. It must not block; one that raises is logged on the `connman` logger and the others
still get the event, and one that takes longer than 0.1 s (`CONNMAN_SLOW_CALLBACK`) is named in a
warning. Events of one connection arrive in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ._causes import Cause
from ._endpoints import UnixEndpoint
from ._options import Endpoint

if TYPE_CHECKING:  # the connection module builds these events: no import at run time
    from .connection import Connection

__all__ = [
    "AttemptFailed",
    "AttemptStarted",
    "Closed",
    "Connected",
    "Event",
    "Failed",
    "Listener",
    "Lost",
    "MemberAdded",
    "MemberRemoved",
    "RetryScheduled",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    conn: Connection
    endpoint: Endpoint | UnixEndpoint
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptStarted(_Base):
    """An attempt to connect started (name resolution, TCP connect, TLS handshake).

    Attributes:
        conn: The connection. endpoint: `conn.endpoint` (an `Endpoint` or a `UnixEndpoint`): with
            `alternates` the first endpoint, whichever one is in use (`conn.stats.endpoint` says).
        at: `time.monotonic()` of the event.
        attempt: 1 for the first attempt since the connection was last up (or made), 2 for the
            next, ...
    """

    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFailed(_Base):
    """An attempt failed before connecting.

    Attributes:
        error: Why (as `Connection.last_error`).
        cause: `error` as a `Cause` (`REFUSED`, `TIMEOUT`, `DNS`, `TLS`, ...).
        attempt: Which attempt since the connection was last up, from 1.
    """

    error: BaseException
    cause: Cause
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(_Base):
    """The connection is up (`on_connect` runs next).

    Attributes:
        latency: Seconds the successful attempt took (resolution, TCP connect and TLS handshake).
    """

    latency: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Lost(_Base):
    """An established connection went down (`on_reset` runs next); `reconnect()` counts too.

    Attributes:
        error: Why (None for a clean EOF or a `reconnect()`).
        cause: `EOF`, `RESET`, `HALF_OPEN`, `RECONNECT`, ...
        uptime: Seconds it had been up.
    """

    error: BaseException | None
    cause: Cause
    uptime: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(_Base):
    """A retry timer was armed after a failed attempt or a loss (state WAITING).

    Attributes:
        delay: Seconds until the next attempt.
        cause: Why the connection is down (the last failure's or loss's cause).
    """

    delay: float
    cause: Cause | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed(_Base):
    """The connection stopped retrying (state FAILED; `on_give_up` runs next).

    Attributes:
        reason: "max_attempts", "give_up_after" or "retry_if".
        error: The last error (an `EOFError` when `retry_if` refused to retry a clean EOF).
        attempts: Consecutive failed attempts (0 when `retry_if` refused to retry a loss).
    """

    reason: str
    error: BaseException
    attempts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(_Base):
    """The application disconnected the connection (state CLOSED).

    No event about it follows, except `MemberRemoved` from its pool."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberAdded(_Base):
    """A connection joined a pool (`Pool.add_connection()`).

    Attributes:
        pool: The pool's name.
    """

    pool: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberRemoved(_Base):
    """A connection left a pool (`Pool.remove()`, or it was disconnected, or the pool closed).

    Attributes:
        pool: The pool's name.
    """

    pool: str


Event: TypeAlias = (
    AttemptStarted
    | AttemptFailed
    | Connected
    | Lost
    | RetryScheduled
    | Failed
    | Closed
    | MemberAdded
    | MemberRemoved
)
"""Any of the events above: what a listener receives (match on the class to tell them apart)."""

Listener: TypeAlias = Callable[[Event], object]
"""What `ConnectionManager.subscribe()` takes: a plain (not async) function of one event; its return
value is ignored."""
