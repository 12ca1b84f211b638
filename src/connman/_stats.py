"""`Stats`: an immutable snapshot of one connection's counters."""

from __future__ import annotations

from dataclasses import dataclass

from ._causes import Cause
from ._endpoints import UnixEndpoint
from ._options import Endpoint
from ._state import State

__all__ = ["Stats"]


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of one connection's counters (trio's `statistics()`: immutable, named fields).

    Durations are measured with `time.monotonic()`, whatever the event loop's own clock (uvloop's is
    millisecond-grained).

    Attributes:
        state: The state when the snapshot was taken.
        connects: Times the connection was established.
        resets: Times an established connection was lost (each fired `on_reset`).
        failed_attempts: Attempts that never connected.
        bytes_in: Bytes received and handed to `on_data`.
        bytes_out: Bytes handed to the transport by `write()` / `writelines()` (bytes, whatever the
            item size of a memoryview).
        queued: Bytes waiting in the write queue (`queue_while_down`).
        last_error: Why the last attempt failed or the last connection was lost; None for a clean EOF.
        last_cause: `last_error` as a `Cause` (eof, reset, refused, timeout, half-open, dns, tls, ...).
        connected_since: Wall-clock time (`time.time()`) of the current connection; None when down.
        in_state_for: Seconds spent in `state` so far.
        connect_latency: Seconds the last successful attempt took (resolution, TCP connect and TLS
            handshake); None before the first connect.
        last_outage: Seconds the connection was down before its last (re)connect: from the loss, or
            from the first failed attempt, to the connect. None if it never was down.
        endpoint: Where the current connection goes, or the next attempt while down: the first
            endpoint, or one of its `alternates` (an `Endpoint`, or a `UnixEndpoint`).
    """

    state: State
    connects: int
    resets: int
    failed_attempts: int
    bytes_in: int
    bytes_out: int
    queued: int
    last_error: BaseException | None
    last_cause: Cause | None
    connected_since: float | None
    in_state_for: float
    connect_latency: float | None
    last_outage: float | None
    endpoint: Endpoint | UnixEndpoint | None = None
