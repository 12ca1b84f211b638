"""connman: a very thin connection manager.

Ask for a TCP connection, or a named pool of them, to `host:port`; connman opens it, notices when it
breaks and re-establishes it with backoff until you call `disconnect()`. You get callbacks
(`on_connect(conn)`, `on_data(bytes)`, `on_reset()`) and keep direct access to the transport and the
socket. Works from asyncio and from plain synchronous code.

    import connman

    conn = connman.connect(11211, "127.0.0.1", on_connect=..., on_data=..., on_reset=...)
    ...
    connman.disconnect_all()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Unpack

from . import dialers, framing
from . import events as events  # the public module of event types (connman.events)
from ._backoff import Backoff
from ._callbacks import Handler
from ._causes import Cause
from ._discovery import Discovery
from ._endpoints import UnixEndpoint
from ._heartbeat import Heartbeat
from ._options import ConnectOptions, Dialer, Endpoint, document_options
from ._pipeline import Pipeline
from ._portal import Wait
from ._state import State
from ._stats import Stats
from ._stream import Stream
from ._version import __version__
from .connection import Connection
from .errors import (
    BufferFull,
    ConnectTimeout,
    ConnmanError,
    Disconnected,
    GaveUp,
    HeartbeatTimeout,
    IdleTimeout,
    LoopGone,
    NotConnected,
    PoolError,
    PoolExists,
    PoolNotFound,
    ProtocolError,
    ProxyError,
    QueueFull,
)
from .manager import ConnectionManager, default_manager
from .pool import Pool

__all__ = [
    "Backoff",
    "BufferFull",
    "Cause",
    "ConnectOptions",
    "ConnectTimeout",
    "Connection",
    "ConnectionManager",
    "ConnmanError",
    "Dialer",
    "Disconnected",
    "Discovery",
    "Endpoint",
    "GaveUp",
    "Handler",
    "Heartbeat",
    "HeartbeatTimeout",
    "IdleTimeout",
    "LoopGone",
    "NotConnected",
    "Pipeline",
    "Pool",
    "PoolError",
    "PoolExists",
    "PoolNotFound",
    "ProtocolError",
    "ProxyError",
    "QueueFull",
    "State",
    "Stats",
    "Stream",
    "UnixEndpoint",
    "Wait",
    "__version__",
    "connect",
    "connect_unix",
    "create_pool",
    "default_manager",
    "dialers",
    "disconnect_all",
    "framing",
    "get_connection",
    "get_pool",
]


@document_options
def connect(
    port: int,
    host: str,
    *,
    on_connect: Callable[[Connection], object] | None = None,
    on_data: Callable[[bytes], object] | None = None,
    on_reset: Callable[[], object] | None = None,
    handler: object = None,
    **options: Unpack[ConnectOptions],
) -> Connection:
    """Open a managed connection on the default manager, to `host:port`; return it at once.

    It connects in the background, and reconnects with backoff whenever the connection is lost, until
    `disconnect()`. From code with no running event loop the connection lives on connman's loop
    thread; inside a running loop, on that loop. Same as `default_manager().connect(...)`: see
    `ConnectionManager.connect()`.

    Args:
        port: TCP port, 1..65535.
        host: Host name or address; resolved anew on every attempt.
        on_connect: Called with the connection each time it is established (sync or async).
        on_data: Called with each chunk of bytes received (sync or async).
        on_reset: Called when an established connection is lost; may return a callable to call
            instead of `on_connect` once, when it is back.
        handler: An object with `on_connect` / `on_data` / `on_reset` methods, instead of the three
            callbacks.
        **options: Every option below (also in `docs/options.md`).

    Raises:
        TypeError: A wrong type, an unknown option, or both `handler` and callbacks.
        ValueError: A value out of range (port 0, a negative timeout, ...).
    """
    return default_manager().connect(
        port,
        host,
        on_connect=on_connect,
        on_data=on_data,
        on_reset=on_reset,
        handler=handler,
        **options,
    )


@document_options
def connect_unix(
    path: str | os.PathLike[str],
    *,
    on_connect: Callable[[Connection], object] | None = None,
    on_data: Callable[[bytes], object] | None = None,
    on_reset: Callable[[], object] | None = None,
    handler: object = None,
    **options: Unpack[ConnectOptions],
) -> Connection:
    """Open a managed connection to a Unix socket on the default manager.

    See `ConnectionManager.connect_unix()`."""
    return default_manager().connect_unix(
        path, on_connect=on_connect, on_data=on_data, on_reset=on_reset, handler=handler, **options
    )


def get_connection(port: int, host: str) -> Connection | None:
    """The oldest managed connection to `host:port` on the default manager, or None."""
    return default_manager().get_connection(port, host)


def create_pool(name: str) -> Pool:
    """Create a named pool on the default manager; raises `PoolExists` if the name is taken."""
    return default_manager().create_pool(name)


def get_pool(name: str) -> Pool:
    """The named pool of the default manager; raises `PoolNotFound` if there is none."""
    return default_manager().get_pool(name)


def disconnect_all(timeout: float | None = 10.0) -> Wait[bool]:
    """Disconnect everything the default manager manages; see `ConnectionManager.disconnect_all()`."""
    return default_manager().disconnect_all(timeout)
