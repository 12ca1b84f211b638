"""`ConnectionManager`: the registry of every managed connection and pool, and the default instance.

The registry is a multiset: it is never keyed by endpoint. The original kept a map keyed `host:port`,
so a second connection to the same endpoint replaced the first, which `disconnectAll()` then never
reached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Final, Self, Unpack

from ._callbacks import resolve_callbacks
from ._endpoints import UnixEndpoint, check_unix_options, check_unix_path
from ._hub import Hub
from ._options import (
    ConnectOptions,
    Endpoint,
    Options,
    check_endpoint,
    check_options,
    check_timeout,
    document_options,
)
from ._portal import Home, Wait, home_for_caller, on_exit
from ._state import State
from .connection import Connection, disconnect_many
from .errors import PoolExists, PoolNotFound
from .events import Listener
from .pool import Pool

__all__ = ["ConnectionManager", "default_manager"]

logger: Final = logging.getLogger("connman")

_managers: weakref.WeakSet[ConnectionManager] = weakref.WeakSet()


class ConnectionManager:
    """Tracks managed connections and named pools; `disconnect_all()` reaches every one of them.

    The module-level functions (`connman.connect()` and friends) use a default instance. Tests and
    libraries make their own, ideally as `async with connman.ConnectionManager() as cm:` (or `with` in
    sync code), which disconnects everything on exit.

    Called inside a running event loop, connections live on that loop; called from plain sync code,
    they live on connman's background loop thread. Every method is safe to call from any thread.
    """

    def __init__(self) -> None:
        # Re-entrant: on the loop's thread a connection's first attempt starts inside `connect()`,
        # and a listener of that `AttemptStarted` may call back into the manager (decision 39).
        self._lock = threading.RLock()
        self._connections: dict[Connection, None] = {}  # an ordered set
        self._pools: dict[str, Pool] = {}
        self._hub = Hub(self._forget)
        _managers.add(self)

    def __repr__(self) -> str:
        return f"<ConnectionManager [{len(self._connections)} connections, {len(self._pools)} pools]>"

    # ---- connections -----------------------------------------------------------------------------

    @document_options
    def connect(
        self,
        port: int,
        host: str,
        *,
        on_connect: Callable[[Connection], object] | None = None,
        on_data: Callable[[bytes], object] | None = None,
        on_reset: Callable[[], object] | None = None,
        handler: object = None,
        **options: Unpack[ConnectOptions],
    ) -> Connection:
        """Open a managed connection to `host:port`; return it at once, connecting in the background.

        Args:
            port: TCP port, 1..65535.
            host: Host name or address; resolved anew on every attempt.
            on_connect: Called with the connection each time it is established (sync or async).
            on_data: Called with each chunk of bytes received. An async one is awaited in order,
                with reading paused meanwhile.
            on_reset: Called when an established connection is lost. It may return a callable to
                call instead of `on_connect` on the next re-establishment, once (with the
                connection if it takes an argument).
            handler: An object with `on_connect` / `on_data` / `on_reset` methods, instead of the
                three callbacks.
            **options: Every option below (also in `docs/options.md`): connman's own, and those
                passed to `loop.create_connection` (`ssl`, `server_hostname`, `family`, ...).

        Raises:
            TypeError: A wrong type, an unknown option, or both `handler` and callbacks.
            ValueError: A value out of range (port 0, a negative timeout, ...).
        """
        endpoint = check_endpoint(port, host)
        return self._open(endpoint, check_options(options), on_connect, on_data, on_reset, handler)

    @document_options
    def connect_unix(
        self,
        path: str | os.PathLike[str],
        *,
        on_connect: Callable[[Connection], object] | None = None,
        on_data: Callable[[bytes], object] | None = None,
        on_reset: Callable[[], object] | None = None,
        handler: object = None,
        **options: Unpack[ConnectOptions],
    ) -> Connection:
        """Open a managed connection to the Unix domain socket at `path`; see `connect()`.

        The same managed connection over `AF_UNIX`: the callbacks, retries and waits are `connect()`'s.
        A missing socket file is a failed attempt (`Cause.REFUSED`), retried like a refused port.

        Args:
            path: An absolute path (str or os.PathLike), or a Linux abstract name starting with "\\0".

        Raises:
            TypeError: `path` is not a str or PathLike; a wrong option type.
            ValueError: A relative or too long path; a TCP-only option (`nodelay`, `keepalive`,
                `user_timeout`, `resolver`, `dialer`, `alternates`, `family`, `local_addr`, ...).
        """
        endpoint = check_unix_path(path)
        check_unix_options(options)
        return self._open(endpoint, check_options(options), on_connect, on_data, on_reset, handler)

    def _open(
        self,
        endpoint: Endpoint | UnixEndpoint,
        checked: Options,
        on_connect: Callable[[Connection], object] | None,
        on_data: Callable[[bytes], object] | None,
        on_reset: Callable[[], object] | None,
        handler: object,
    ) -> Connection:
        callbacks = resolve_callbacks(on_connect, on_data, on_reset, handler, checked.on_error)
        home = home_for_caller()
        with self._lock:
            conn = Connection(endpoint, callbacks, checked, home, self._hub)
            if conn.state is not State.CLOSED:  # a listener of its first event may disconnect it
                self._connections[conn] = None
        return conn

    def _forget(self, conn: Connection) -> None:
        # The connection tells us it was disconnected (on its loop): it leaves the registry and pools.
        with self._lock:
            self._connections.pop(conn, None)
            pools = list(self._pools.values())
        for pool in pools:
            pool.discard(conn)

    @property
    def connections(self) -> tuple[Connection, ...]:
        """Every connection managed now (pooled ones included), oldest first."""
        with self._lock:
            return tuple(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.connections)

    def __len__(self) -> int:
        return len(self._connections)

    def get_connection(self, port: int, host: str) -> Connection | None:
        """The oldest managed connection to `host:port` (pooled ones included), or None."""
        endpoint = check_endpoint(port, host)
        with self._lock:
            for conn in self._connections:
                if conn.endpoint == endpoint:
                    return conn
        return None

    # ---- pools -----------------------------------------------------------------------------------

    def create_pool(self, name: str) -> Pool:
        """Create an empty pool called `name`.

        Raises:
            PoolExists: A pool with that name exists already.
        """
        _check_pool_name(name)
        with self._lock:
            if name in self._pools:
                raise PoolExists(f"pool {name!r} already exists; use get_pool({name!r})")
            pool = self._pools[name] = Pool(name, self, self._hub)
        return pool

    def get_pool(self, name: str) -> Pool:
        """The pool called `name`.

        Raises:
            PoolNotFound: There is no pool with that name.
        """
        _check_pool_name(name)
        with self._lock:
            try:
                return self._pools[name]
            except KeyError:
                known = ", ".join(repr(known) for known in self._pools) or "none"
                raise PoolNotFound(
                    f"no pool named {name!r} (pools: {known}); create it with create_pool({name!r})"
                ) from None

    def remove_pool(self, name: str, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect every member of the pool called `name` and forget the pool.

        Afterwards `get_pool(name)` raises `PoolNotFound` and `create_pool(name)` makes a new one.

        Returns:
            A `Wait`, as `Pool.disconnect()`: True once every member's socket is closed.

        Raises:
            PoolNotFound: There is no pool with that name.
        """
        check_timeout(timeout)
        pool = self.get_pool(name)
        with self._lock:
            if self._pools.get(name) is pool:
                del self._pools[name]
        return pool.close(timeout)

    @property
    def pools(self) -> dict[str, Pool]:
        """The pools by name (a copy)."""
        with self._lock:
            return dict(self._pools)

    # ---- events ----------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Deliver every event of this manager's connections and pools to `listener`.

        The events are the typed, immutable values of `connman.events` (attempt started or failed,
        connected, lost, retry scheduled, failed, closed, pool member added or removed), one per state
        change, never per read or write. `listener(event)` runs in the thread where the event
        happened (a connection's loop thread; the calling thread for pool membership), in order for
        each connection. It must not block: one that raises is logged and the others still run, one
        slower than 0.1 s is named in a warning. See docs/observability.md.

        Args:
            listener: A plain function of one event (not a coroutine function).

        Returns:
            A function that unsubscribes `listener` (calling it again does nothing).

        Raises:
            TypeError: `listener` is not callable, or is a coroutine function.
        """
        return self._hub.subscribe(listener)

    # ---- closing ---------------------------------------------------------------------------------

    def disconnect_all(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect every managed connection, pooled or not (pools stay, empty).

        Takes effect at the call, from any thread or loop. Sync callers block until every socket is
        closed, for at most `timeout` seconds; async callers may await the result to wait as long.
        A connection whose event loop has ended is closed by hand (its socket shut down).

        Returns:
            A `Wait` that is True when everything closed in time.
        """
        check_timeout(timeout)
        for pool in self.pools.values():
            pool.stop_discovery()  # or it would add members back
        return disconnect_many(self.connections, timeout)

    async def aclose(self) -> None:
        """Disconnect everything and wait until every socket is closed."""
        await self.disconnect_all(timeout=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect_all()

    def _after_fork_in_child(self) -> None:
        # A forked child shares the parent's sockets but not its loop thread: the parent's
        # connections are the parent's. The child starts with an empty registry (the pools empty
        # themselves: see pool.py).
        self._lock = threading.RLock()
        self._hub.after_fork_in_child()  # the listeners stay subscribed
        self._connections.clear()


_default = ConnectionManager()


def default_manager() -> ConnectionManager:
    """The manager behind the module-level functions (`connman.connect()`, ...)."""
    return _default


def _close_all_at_exit(home: Home, deadline: float) -> None:
    # Run by the portal's exit hook before it stops connman's loop thread: flush and close what is
    # open there. Connections on an application's loop are the application's to close.
    for manager in list(_managers):
        for pool in manager.pools.values():
            pool.stop_discovery()
    conns = [conn for manager in list(_managers) for conn in manager.connections if conn.loop is home.loop]
    if conns:
        disconnect_many(conns, max(0.0, deadline - time.monotonic()))


on_exit(_close_all_at_exit)

if hasattr(os, "register_at_fork"):

    def _forget_all_in_child() -> None:
        for manager in list(_managers):
            manager._after_fork_in_child()

    os.register_at_fork(after_in_child=_forget_all_in_child)


def _check_pool_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"pool name must be a non-empty str, not {name!r}")
    if not name:
        raise ValueError("pool name must be a non-empty str, not ''")
