"""The data-path policy of one connection: write admission, back-pressure, the idle deadline, the linger.

Like `_state.py`, this module does no IO and reads no clock: the driver (`connection.py`) passes in what
it sees (the state, how many bytes the transport still holds, the time) and executes the decision that
comes back. So every rule here can be tested exhaustively, without a socket.

Theory of operation
-------------------
**Every byte not yet handed to the kernel counts.** Three places hold such bytes: the transport's own
buffer (asyncio writes what the kernel takes at once and keeps the rest), the batch of writes made from
other threads that the loop has not flushed yet, and the write being admitted. `max_write_buffer` bounds
their sum, whatever the thread; a write that would go past it is refused whole (`BufferFull`), so a
single 64 MiB write cannot slip under a 1 MiB limit. Counting the write being admitted in full, even
though asyncio may hand part of it to the kernel at once, keeps the rule simple and the bound honest.

**One admission rule for every thread.** A write is sent when the transport is open (present, not
closing); otherwise the connection is down *for writing*, even if connman has not yet seen the loss:
a `write()` after `conn.transport.close()` is queued (`queue_while_down`) or refused like any write
while down, never dropped in silence.

**The high-water mark** is asyncio's 64 KiB, or half of `max_write_buffer` when that is smaller, so
that a small limit is not checked only after 64 KiB piled up, and `write()` returns False (above the
mark) before the limit refuses a write.

**The close linger.** A close flushes, sends FIN and waits for the peer to close, for at most
`CLOSE_LINGER` seconds, then aborts.

**The idle deadline** (`idle_timeout`) counts silence only while reading is not paused by connman: an
async `on_data` that takes longer than the deadline pauses reading, and that pause is not the peer's
silence. One timer per connection, re-armed when it fires, and a byte count compared at each check:
nothing runs per read. A dead peer is found between 1× and 2× the timeout after its last byte.

**How long a connection was alive** decides whether it proved stable (the flap guard, in `_state.py`).
When a half-open detector ends a connection, it died silently some time before it was dropped; it was
alive only up to the last evidence of life. `IdleWatch.alive_until` is that evidence, as a lower bound
(the check before the one that last saw bytes arrive), so a peer that goes silent right after each
connect can never look stable.
"""

from __future__ import annotations

import enum
import functools
import sys
from collections import deque
from typing import Final

from ._causes import Cause, classify
from ._heartbeat import EARLY, HeartbeatWatch
from ._options import Options
from ._state import ConnectionMachine, State
from .errors import (
    BufferFull,
    ConnmanError,
    Disconnected,
    GaveUp,
    HeartbeatTimeout,
    IdleTimeout,
    NotConnected,
    QueueFull,
)

__all__ = [
    "CLOSE_LINGER",
    "DEFAULT_HIGH_WATER",
    "Admit",
    "IdleWatch",
    "Outbox",
    "admit_write",
    "failed_attempts",
    "high_water",
    "last_alive",
    "refusal",
]

#: asyncio's own default high-water mark for a transport's write buffer (64 KiB); low is a quarter.
DEFAULT_HIGH_WATER: Final = 64 * 1024

#: Seconds a close may take before the transport is aborted: flushing what was written, our FIN, and
#: the peer's own close (see `_protocol.ManagedProtocol.close_gracefully`). A peer that stopped
#: reading, or never closes, cannot keep `wait_closed()` waiting longer.
CLOSE_LINGER: Final = 2.0


class Admit(enum.Enum):
    """What to do with a write: send it, queue it, or refuse it with the error named."""

    SEND = "send"
    QUEUE = "queue"
    BUFFER_FULL = "buffer full"
    NOT_CONNECTED = "not connected"
    QUEUE_FULL = "queue full"
    DISCONNECTED = "disconnected"
    GAVE_UP = "gave up"


SEND: Final = Admit.SEND
QUEUE: Final = Admit.QUEUE


def failed_attempts(count: int) -> str:
    """ "1 failed attempt", "3 failed attempts": for messages."""
    return f"{count} failed attempt{'' if count == 1 else 's'}"


def admit_write(
    state: State,
    transport_open: bool,
    size: int,
    unflushed: int,
    queued: int,
    *,
    max_buffer: int | None,
    queue_limit: int,
) -> Admit:
    """Decide a write of `size` bytes.

    Args:
        state: The connection's state.
        transport_open: Whether there is a transport that is not closing.
        size: Bytes in the write.
        unflushed: Bytes not yet handed to the kernel: the transport's buffer plus the batch from
            other threads not flushed yet.
        queued: Bytes queued while down (the batch from other threads included, while down).
        max_buffer: `max_write_buffer`; None for no limit.
        queue_limit: `queue_while_down`; 0 for no queueing.
    """
    if transport_open:
        if max_buffer is not None and unflushed + size > max_buffer:
            return Admit.BUFFER_FULL
        return SEND
    if state is State.CLOSED:
        return Admit.DISCONNECTED
    if state is State.FAILED:
        return Admit.GAVE_UP
    if not queue_limit:
        return Admit.NOT_CONNECTED
    if queued + size > queue_limit:
        return Admit.QUEUE_FULL
    return QUEUE


def refusal(
    verdict: Admit,
    endpoint: object,
    size: int,
    unflushed: int,
    queued: int,
    machine: ConnectionMachine,
    options: Options,
) -> ConnmanError:
    """The exception that tells the writer why `verdict` refused its write of `size` bytes."""
    if verdict is Admit.BUFFER_FULL:
        most = options.max_write_buffer
        if most is not None and size > most:  # waiting cannot help: it never fits, whatever the peer does
            return BufferFull(
                f"write of {size} bytes to {endpoint} is larger than max_write_buffer={most}"
                " and can never be accepted: raise max_write_buffer"
                " or split the data"
            )
        return BufferFull(
            f"write of {size} bytes to {endpoint} would make {unflushed + size} bytes unsent, past"
            f" max_write_buffer={options.max_write_buffer} ({unflushed} unsent already: the peer"
            " is not reading fast enough); wait for wait_writable()"
        )
    if verdict is Admit.DISCONNECTED:
        return Disconnected(f"connection to {endpoint} was disconnected by the application")
    if verdict is Admit.GAVE_UP:
        reason = machine.give_up_reason or "max_attempts"
        if reason == "retry_if":
            cause = machine.last_cause.value if machine.last_cause is not None else "unknown"
            why = f"because retry_if returned False for {machine.last_error!r} (cause {cause})"
        else:
            limit = (
                f"max_attempts={options.max_attempts}"
                if reason == "max_attempts"
                else f"give_up_after={options.give_up_after} s"
            )
            why = f"after {failed_attempts(machine.failures)} ({limit}; last error: {machine.last_error!r})"
        return GaveUp(
            f"connection to {endpoint} gave up {why}; call reconnect() to try again",
            reason=reason,
            attempts=machine.failures,
            last_error=machine.last_error,
        )
    if verdict is Admit.QUEUE_FULL:
        return QueueFull(
            f"write of {size} bytes to {endpoint} would exceed queue_while_down="
            f"{options.queue_while_down} ({queued} bytes queued already)"
        )
    why = "its transport is closing" if machine.state is State.CONNECTED else f"it is {machine.state.value}"
    return NotConnected(
        f"connection to {endpoint} is down ({why}); pass queue_while_down=N to queue writes while down"
    )


def high_water(max_buffer: int | None) -> int:
    """The high-water mark of the send buffer: asyncio's 64 KiB, or half of `max_buffer` if smaller,
    so that `write()` says "stop" (returns False) before the limit refuses a write."""
    if max_buffer is None or max_buffer // 2 >= DEFAULT_HIGH_WATER:
        return DEFAULT_HIGH_WATER
    return max_buffer // 2


@functools.lru_cache(maxsize=64)
def water_marks(max_buffer: int | None) -> tuple[int, int, int]:
    """`(high, low, headroom)` for a send buffer limited to `max_buffer` bytes (None: unlimited).

    `high` and `low` are the transport's water marks (`high_water()`, and a quarter of it); below
    `high`, a write of up to `headroom` bytes cannot pass `max_buffer`. Cached: one tuple, and one
    set of ints, for all the connections that share a limit (W4 holds 10,000).
    """
    high = high_water(max_buffer)
    return high, high // 4, sys.maxsize if max_buffer is None else max_buffer - high


def last_alive(
    error: BaseException | None,
    now: float,
    *,
    idle: IdleWatch | None,
    keepalive: tuple[float, float, int] | None,
    user_timeout: float | None,
    heartbeat: HeartbeatWatch | None = None,
) -> float | None:
    """The last time a lost connection is known to have been alive; None: `now` (it was alive).

    After the idle deadline or an unanswered heartbeat, the last byte seen; after the kernel's own
    half-open detection (`ETIMEDOUT` on an established connection), `now` minus the shortest silence
    that detection needs (keepalive's idle + interval × count, or `user_timeout`).
    """
    if isinstance(error, IdleTimeout):
        return idle.alive_until if idle is not None else None
    if isinstance(error, HeartbeatTimeout):
        return heartbeat.alive_until if heartbeat is not None else None
    if classify(error, connected=True) is not Cause.HALF_OPEN:
        return None
    silent: float | None = None
    if keepalive is not None:
        idle_seconds, interval, count = keepalive
        silent = idle_seconds + interval * count
    if user_timeout is not None:
        silent = user_timeout if silent is None else min(silent, user_timeout)
    return None if silent is None else now - silent


class Outbox:
    """Bytes a connection holds before they reach the transport: the write queue while down
    (`queue_while_down`) and the batch written from other threads, waiting for the loop to flush it.

    Pure data: the driver guards the batch with a lock and hands both to the transport.
    """

    __slots__ = ("batch", "batched", "queue", "queued")

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.batch: list[bytes] = []
        self.batched = 0

    def enqueue(self, data: bytes) -> None:
        """Queue `data` while down; it goes out first after the next connect."""
        self.queue.append(data)
        self.queued += len(data)

    def take_queue(self) -> list[bytes]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        chunks = list(self.queue)
        self.queue.clear()
        self.queued = 0
        return chunks

    def add_to_batch(self, data: bytes) -> bool:
        """Add a write from another thread; True if it is the first of a batch (schedule a flush)."""
        first = not self.batch
        self.batch.append(data)
        self.batched += len(data)
        return first

    def take_batch(self) -> bytes:
        """The batch, joined; empty afterwards."""
        data = b"".join(self.batch)
        self.batch.clear()
        self.batched = 0
        return data

    def begin_flush(self) -> bytes:
        """The batch, joined, for the loop to hand to the transport. Its bytes stay counted in
        `batched` until `end_flush()`: a writer in another thread must not see them vanish in
        between, before the transport's buffer holds them."""
        data = b"".join(self.batch)
        self.batch = []
        return data

    def end_flush(self, size: int) -> None:
        """The `size` bytes of `begin_flush()` are with the transport (or queued, or dropped)."""
        self.batched -= size


class IdleWatch:
    """The idle deadline of one connection (`idle_timeout`); see the module docstring.

    The driver calls `start()` at connect, `pause()` / `resume()` when connman pauses reading, and
    `check()` when the timer fires, passing the count of bytes received so far and the time.
    """

    __slots__ = ("alive_until", "checked_at", "mark", "paused", "quiet_since", "timeout")

    def __init__(self, timeout: float, now: float, received: int) -> None:
        self.timeout = timeout
        self.mark = received
        self.quiet_since = now
        self.checked_at = now
        #: A lower bound of the time of the last byte received (the connect, before any byte).
        self.alive_until = now
        self.paused = False

    def pause(self) -> None:
        """Reading is paused by connman: silence stops counting."""
        self.paused = True

    def resume(self, now: float, received: int) -> None:
        """Reading resumed: silence counts again, from now."""
        if received != self.mark:
            self.alive_until = self.checked_at  # bytes arrived (before the pause) after the last check
        self.paused = False
        self.quiet_since = now
        self.mark = received

    def check(self, now: float, received: int) -> float | None:
        """The timer fired: the delay until the next check, or None if the peer is presumed dead."""
        if received != self.mark:
            # Bytes arrived since the last check, so after `checked_at` at the earliest.
            self.alive_until = self.checked_at
            self.mark = received
            self.quiet_since = now
        self.checked_at = now
        if self.paused:
            return self.timeout
        remaining = self.quiet_since + self.timeout - now
        if remaining <= EARLY:  # a timer may fire a hair early on a coarse loop clock
            return None
        return remaining if remaining < self.timeout else self.timeout
