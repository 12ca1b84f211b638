"""What both metric exporters (`connman.otel`, `connman.prometheus`) share: their vocabulary, the
pool each connection belongs to, and the default histogram buckets. No third-party import here.

Both read a manager only through its public surface: `subscribe()` for the counters and the
histogram (one update per event: per state change, never per read or write), and `connections` /
`pools` for the gauge of connections by state, computed when the metrics are collected.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Final

from . import events
from ._endpoints import UnixEndpoint
from ._options import Endpoint
from ._state import State

if TYPE_CHECKING:
    from .connection import Connection
    from .manager import ConnectionManager

__all__ = ["CONNECT_BUCKETS", "PoolIndex", "connections_by_state", "outcome_of"]

#: Histogram bounds for the connect time, in seconds: loopback (sub-millisecond) to a slow TLS
#: handshake across a WAN, up to the default `connect_timeout` (10 s).
CONNECT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The attempt outcome of a successful attempt; a failed one is its cause ("refused", "tls", ...).
CONNECTED: Final = "connected"


def outcome_of(event: events.AttemptFailed | events.Connected) -> str:
    """`"connected"`, or the cause of the failure (`Cause.value`: "refused", "timeout", "tls", ...)."""
    return CONNECTED if isinstance(event, events.Connected) else event.cause.value


class PoolIndex:
    """Which pool each connection of a manager is in, kept up to date from the membership events.

    Subscribe `update` first, then call `scan()`, so that no change falls between the two.
    """

    __slots__ = ("_lock", "_pool_of")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool_of: dict[Connection, str] = {}

    def scan(self, manager: ConnectionManager) -> None:
        """Take in the pools that exist now."""
        with self._lock:
            for name, pool in manager.pools.items():
                for conn in pool:
                    self._pool_of.setdefault(conn, name)

    def update(self, event: events.Event) -> None:
        """Follow `MemberAdded` / `MemberRemoved`; other events change nothing here."""
        if isinstance(event, events.MemberAdded):
            with self._lock:
                self._pool_of[event.conn] = event.pool
        elif isinstance(event, events.MemberRemoved):
            with self._lock:
                if self._pool_of.get(event.conn) == event.pool:
                    del self._pool_of[event.conn]

    def pool_of(self, conn: Connection) -> str | None:
        """The pool `conn` is in, or None."""
        return self._pool_of.get(conn)


def server_of(endpoint: Endpoint | UnixEndpoint) -> tuple[str, int | None]:
    """The `server.address` and `server.port` of an endpoint: a Unix socket's address is its path
    and it has no port (as the OpenTelemetry conventions put it)."""
    if isinstance(endpoint, UnixEndpoint):
        return endpoint.path, None
    return endpoint.host, endpoint.port


def connections_by_state(
    manager: ConnectionManager,
) -> Counter[tuple[str, int | None, str | None, State]]:
    """The manager's connections now, counted by (address, port, pool or None, state); every state
    of an (address, port, pool) that has a connection is present, 0 when no connection is in it."""
    pool_of = {conn: name for name, pool in manager.pools.items() for conn in pool}
    counts: Counter[tuple[str, int | None, str | None, State]] = Counter()
    for conn in manager.connections:
        (address, port), pool = server_of(conn.endpoint), pool_of.get(conn)
        for state in State:
            counts[address, port, pool, state] += 0
        counts[address, port, pool, conn.state] += 1
    return counts
