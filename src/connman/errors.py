"""Exceptions raised by connman.

The tree::

    ConnmanError
    ├── NotConnected (also a builtin ConnectionError)   the connection is down, retrying
    ├── Disconnected                                     the application called disconnect()
    ├── GaveUp                                           max_attempts, give_up_after or retry_if: it failed
    ├── QueueFull                                        the write queue would exceed queue_while_down
    ├── BufferFull                                       the peer stopped reading: the send buffer is full
    ├── ConnectTimeout (also a builtin TimeoutError)     an attempt outlasted connect_timeout
    ├── IdleTimeout (also a builtin TimeoutError)        nothing arrived for idle_timeout seconds
    ├── HeartbeatTimeout (also a builtin TimeoutError)   a heartbeat ping got no reply in time
    ├── LoopGone (also a builtin RuntimeError)          the connection's event loop has ended
    ├── ProtocolError                                    the peer broke the protocol (on_data raised it)
    ├── ProxyError (also a builtin ConnectionError)      a proxy (connman.dialers) failed or refused
    └── PoolError
        ├── PoolExists                                   create_pool() with a name in use
        └── PoolNotFound                                 get_pool() with an unknown name

As in trio, *your* code closing a connection (`Disconnected`) is kept apart from the network taking it
away (`NotConnected`, with the cause in `Connection.last_error`). Bad arguments raise the builtin
`TypeError` / `ValueError` at the call that received them, never later inside the retry loop.
"""

from __future__ import annotations

__all__ = [
    "BufferFull",
    "ConnectTimeout",
    "ConnmanError",
    "Disconnected",
    "GaveUp",
    "HeartbeatTimeout",
    "IdleTimeout",
    "LoopGone",
    "NotConnected",
    "PoolError",
    "PoolExists",
    "PoolNotFound",
    "ProtocolError",
    "ProxyError",
    "QueueFull",
]


class ConnmanError(Exception):
    """Raised for every error that is connman's own; the base class of the others."""


class NotConnected(ConnmanError, ConnectionError):
    """Raised when writing to a connection that is not connected (it is connecting or waiting to retry)."""


class Disconnected(ConnmanError):
    """Raised when using a connection after the application called `disconnect()` on it."""


class GaveUp(ConnmanError):
    """Raised when writing to a connection that stopped retrying (state FAILED).

    Attributes:
        reason: "max_attempts" (that many consecutive attempts failed), "give_up_after" (the
            connection stayed down longer than that many seconds) or "retry_if" (the application's
            `retry_if` returned False for the last error).
        attempts: Consecutive failed attempts before giving up.
        last_error: Why the last attempt failed.
    """

    def __init__(self, message: str, *, reason: str, attempts: int, last_error: BaseException | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts = attempts
        self.last_error = last_error


class QueueFull(ConnmanError):
    """Raised when a write while down would make the queue exceed `queue_while_down` bytes."""


class BufferFull(ConnmanError):
    """Raised when a write would grow the transport's send buffer past `max_write_buffer` bytes.

    The peer is not reading (or the network is slower than the writer): wait for `drain()`.
    """


class ConnectTimeout(ConnmanError, TimeoutError):
    """An attempt took longer than `connect_timeout` (seen in `last_error`, never raised to callers).

    Unlike a kernel `ETIMEDOUT` (also a `TimeoutError`), its `errno` is None.
    """


class IdleTimeout(ConnmanError, TimeoutError):
    """Nothing arrived for `idle_timeout` seconds, so the peer was presumed dead (seen in `last_error`)."""


class HeartbeatTimeout(ConnmanError, TimeoutError):
    """Nothing arrived within the heartbeat's `timeout` after a ping: the peer is presumed dead.

    Seen in `last_error`; `last_cause` is `Cause.HALF_OPEN`."""


class LoopGone(ConnmanError, RuntimeError):
    """Raised when a call needs the connection's event loop and that loop has ended.

    That is an `asyncio.run()` that returned with the connection open. `disconnect()` still works: it
    closes the socket by hand.
    """


class ProxyError(ConnmanError, ConnectionError):
    """A proxy of `connman.dialers` could not be reached, or refused the tunnel.

    Seen in `last_error`, as `Cause.PROXY`; the message names the proxy and its reply."""


class ProtocolError(ConnmanError):
    """The peer sent bytes that break the protocol.

    An oversized or malformed frame, or an answer nobody asked for.

    Raise it from `on_data` (the `connman.framing` splitters and `Pipeline` do) to drop the
    connection: reading stops at once, nothing more of that connection reaches `on_data`, and it is
    re-established with `last_cause` `Cause.PROTOCOL` and this exception in `last_error`. It is logged
    as a warning, not passed to `on_error` (the peer misbehaved, not the callback).
    """


class PoolError(ConnmanError):
    """Raised for pool registry errors; the base class of `PoolExists` and `PoolNotFound`."""


class PoolExists(PoolError):
    """Raised when creating a pool with a name that is already in use."""


class PoolNotFound(PoolError, LookupError):
    """Raised when looking up a pool name that does not exist."""
