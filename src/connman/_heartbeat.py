"""Heartbeats: the `Heartbeat` option, and the pure policy that decides when to ping and when to give up.

Like `_flow.py`, nothing here does IO or reads a clock: the driver passes in the time and the count of
bytes received so far, and executes the decision (`Beat`) that comes back.

Theory of operation
-------------------
`idle_timeout` finds a dead peer only if the protocol is chatty: a connection that is quiet but healthy
looks the same as a paused peer. A heartbeat asks. After `interval` seconds with nothing received,
connman pings (calls `send(conn)`, or writes `send` if it is bytes); if nothing at all arrives within
`timeout` after the ping, the peer is presumed dead and the connection is lost with `Cause.HALF_OPEN`.
Any byte counts as the reply, so an application may ping through its own protocol (a redis `PING`, a
memcached `version`) and read the answer as usual, without the pipeline getting out of step.

**One timer per connection, nothing per read** (gRPC's keepalive works the same way). The protocol
already counts the bytes it receives; `HeartbeatWatch.check()` compares that count with the one it saw
at its previous check. While bytes keep arriving, the timer fires once per `interval` and sees them. A
check that sees none since the previous one, `interval` after it, pings: so a ping goes out between 1×
and 2× `interval` after the last byte. While a ping is unanswered the watch checks every
`min(interval, timeout)`, and gives up at `timeout` after the ping. A peer that stops answering is
therefore dropped between `interval + timeout` and `2 × interval + timeout` after its last byte.

**connman's own pauses do not count.** While an async callback runs, connman pauses reading (the
back-pressure of an async `on_data`); a reply that arrived meanwhile cannot be counted, so no ping is
sent and none is held against the peer until reading resumes, as for `idle_timeout`. A ping still
unanswered when reading resumes is not forgotten: its `timeout` starts again at the resume.

**Evidence of life** for the flap guard (`_state.py`): `alive_until` is the check before the one that
last saw bytes, a lower bound of the last byte (as `IdleWatch.alive_until`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ._backoff import _check_seconds

__all__ = ["Beat", "Heartbeat", "HeartbeatWatch"]

#: A timer may fire a hair early on a coarse loop clock (uvloop's is millisecond-grained): a check
#: this close to a deadline counts as at it (the idle deadline too, `_flow.IdleWatch`).
EARLY: Final = 0.001


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Ping a quiet connection, and drop it if the peer does not answer (the `heartbeat=` option).

    After `interval` seconds with nothing received, connman calls `send(conn)` (sync or async, run like
    the other callbacks: in turn, isolated, logged if it raises), or writes `send` if it is bytes. If
    nothing at all arrives within `timeout` seconds of that, the connection is lost with
    `Cause.HALF_OPEN` (`last_error` is a `HeartbeatTimeout`) and re-established. Any byte received
    counts as the reply. One timer per connection: the ping goes out between 1× and 2× `interval` after
    the last byte, and a silent peer is dropped within `2 × interval + timeout` of its last byte (plus
    the time an async `send` runs).

    Args:
        interval: Seconds without a received byte before a ping; > 0.
        timeout: Seconds to wait for any byte after a ping; > 0.
        send: The ping: bytes to write (non-empty), or a callable taking the connection; an async
            one pauses reading while it runs, so it writes the ping and returns (decision 50).
            A `Wait` it returns (a `Pipeline.request()`) is not awaited (decision 51).

    Raises:
        TypeError: A number that is not a number of seconds; `send` neither bytes nor callable.
        ValueError: A number <= 0 or not finite; empty `send` bytes.
    """

    interval: float
    timeout: float
    send: bytes | Callable[[Any], object]

    def __post_init__(self) -> None:
        object.__setattr__(self, "interval", _check_seconds("interval", self.interval, positive=True))
        object.__setattr__(self, "timeout", _check_seconds("timeout", self.timeout, positive=True))
        send = self.send
        if isinstance(send, (bytearray, memoryview)):
            send = bytes(send)  # a copy: the caller may change its buffer later
            object.__setattr__(self, "send", send)
        if isinstance(send, bytes):
            if not send:
                raise ValueError("send must be non-empty bytes or a callable, not b''")
        elif not callable(send):
            raise TypeError(f"send must be bytes or a callable taking the connection, not {send!r}")


class Beat(enum.Enum):
    """What `HeartbeatWatch.check()` asks of the driver."""

    WAIT = "wait"
    """Nothing to do; check again after the delay returned with it."""
    PING = "ping"
    """Send the ping now; check again after the delay."""
    DEAD = "dead"
    """No reply within `timeout`: the peer is presumed dead."""


class HeartbeatWatch:
    """The heartbeat of one established connection; see the module docstring.

    The driver makes one at connect, calls `pause()` / `resume()` when connman pauses reading, and
    `check()` when its timer fires (or earlier: a check may come at any time), passing the count of
    bytes received so far and the time. The first check is due `interval` after the start.
    """

    __slots__ = ("alive_until", "checked_at", "due_at", "interval", "mark", "paused", "ping_at", "timeout")

    def __init__(self, heartbeat: Heartbeat, now: float, received: int) -> None:
        self.interval = heartbeat.interval
        self.timeout = heartbeat.timeout
        self.mark = received
        self.checked_at = now
        self.due_at = now + heartbeat.interval
        #: When the unanswered ping went out; None while no ping is outstanding.
        self.ping_at: float | None = None
        #: A lower bound of the time of the last byte received (the connect, before any byte).
        self.alive_until = now
        self.paused = False

    def pause(self) -> None:
        """Reading is paused by connman: no ping, and no reply is expected, until `resume()`."""
        self.paused = True

    def resume(self, now: float, received: int) -> None:
        """Reading resumed: a ping still unanswered gets its full `timeout` from now (its reply may
        have waited unread); otherwise a full `interval` of silence is needed before the next ping."""
        if received != self.mark:
            self.alive_until = self.checked_at
            self.mark = received
            self.ping_at = None  # answered before the pause
        self.paused = False
        if self.ping_at is None:
            self.due_at = now + self.interval
        else:
            # Kept, not forgotten: an async `send` pauses reading itself, and forgetting its ping at
            # every resume kept a silent peer connected for good (decision 50).
            self.ping_at = now
            self.due_at = now + min(self.interval, self.timeout)

    def check(self, now: float, received: int) -> tuple[Beat, float]:
        """Decide, at `now`, with `received` bytes counted so far: what to do, and the delay (in
        seconds) until the next check (0.0 with `Beat.DEAD`)."""
        if received != self.mark:
            # Bytes arrived since the last check, so after `checked_at` at the earliest; they answer an
            # outstanding ping, and the silence before the next one starts now.
            self.alive_until = self.checked_at
            self.mark = received
            self.ping_at = None
            self.due_at = now + self.interval
        self.checked_at = now
        if self.paused:  # no ping and no verdict: a reply could not be read (see `resume()`)
            self.due_at = now + self.interval
            return Beat.WAIT, self.interval
        if now < self.due_at - EARLY:
            return Beat.WAIT, self.due_at - now
        ping_at = self.ping_at
        if ping_at is None:
            self.ping_at = now
            self.due_at = now + min(self.interval, self.timeout)
            return Beat.PING, self.due_at - now
        deadline = ping_at + self.timeout
        if now >= deadline - EARLY:
            return Beat.DEAD, 0.0
        self.due_at = min(deadline, now + self.interval)
        return Beat.WAIT, self.due_at - now
