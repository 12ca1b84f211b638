"""`ConnectionManager`: the registry of every managed connection and pool, and the default instance.

The registry is a multiset: it is never keyed by endpoint. The original kept a map keyed `host:port`,
so a second connection to the same endpoint replaced the first, which `disconnectAll()` then never
reached.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Final, Self, Unpack

from ._callbacks import resolve_callbacks
from ._options import ConnectOptions, check_endpoint, check_options, check_timeout
from ._thread import Wait, portal, run_wait, running_loop
from .connection import Connection
from .errors import PoolExists, PoolNotFound
from .pool import Pool

__all__ = ["ConnectionManager", "default_manager"]

logger: Final = logging.getLogger("connman")

#: How long the exit hook waits for connections to close before the loop thread is stopped anyway.
EXIT_TIMEOUT: Final = 5.0

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
        self._lock = threading.RLock()
        self._connections: dict[Connection, None] = {}  # an ordered set
        self._pools: dict[str, Pool] = {}
        _managers.add(self)

    def __repr__(self) -> str:
        return f"<ConnectionManager [{len(self._connections)} connections, {len(self._pools)} pools]>"

    # ---- connections -----------------------------------------------------------------------------

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
            **options: See `ConnectOptions` and `docs/options.md`: `connect_timeout`, `backoff`,
                `max_attempts`, `on_give_up`, `on_error`, `nodelay`, `queue_while_down`, and those
                passed to `loop.create_connection` (`ssl`, `server_hostname`, `family`, ...).

        Raises:
            TypeError: A wrong type, an unknown option, or both `handler` and callbacks.
            ValueError: A value out of range (port 0, a negative timeout, ...).
        """
        return self._open(port, host, on_connect, on_data, on_reset, handler, options)

    def _open(
        self,
        port: object,
        host: object,
        on_connect: object,
        on_data: object,
        on_reset: object,
        handler: object,
        options: ConnectOptions,
    ) -> Connection:
        endpoint = check_endpoint(port, host)
        checked = check_options(options)
        callbacks = resolve_callbacks(on_connect, on_data, on_reset, handler, checked.on_error)
        loop, thread_id = self._loop_for_caller()
        conn = Connection(endpoint, callbacks, checked, loop, thread_id, self)
        with self._lock:
            self._connections[conn] = None
        if threading.get_ident() == thread_id:
            conn._start()
        else:
            loop.call_soon_threadsafe(conn._start)
        return conn

    @staticmethod
    def _loop_for_caller() -> tuple[asyncio.AbstractEventLoop, int]:
        running = running_loop()
        if running is not None:
            return running, threading.get_ident()
        thread = portal()
        loop = thread.loop()
        assert thread.thread_id is not None
        return loop, thread.thread_id

    def _forget(self, conn: Connection) -> None:
        with self._lock:
            self._connections.pop(conn, None)
            for pool in self._pools.values():
                pool._discard(conn)

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
            pool = self._pools[name] = Pool(name, self)
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

    @property
    def pools(self) -> dict[str, Pool]:
        """The pools by name (a copy)."""
        with self._lock:
            return dict(self._pools)

    # ---- closing ---------------------------------------------------------------------------------

    def disconnect_all(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect every managed connection, pooled or not (pools stay, empty).

        Inside an event loop this takes effect at once and returns; `await` the result to wait until
        every socket is closed. From sync code it blocks until then, for at most `timeout` seconds.

        Returns:
            A `Wait` that is True when everything closed in time.
        """
        check_timeout(timeout)
        return self._disconnect_many(list(self.connections), timeout)

    def _disconnect_many(self, conns: list[Connection], timeout: float | None) -> Wait[bool]:
        running = running_loop()
        by_loop: dict[asyncio.AbstractEventLoop, list[Connection]] = {}
        for conn in conns:
            by_loop.setdefault(conn.loop, []).append(conn)
        waits: list[Wait[bool]] = []
        for loop, group in by_loop.items():
            if loop is running:
                _disconnect_each(group)
            elif loop.is_running():
                loop.call_soon_threadsafe(_disconnect_each, group)
            else:
                # Its loop is gone (asyncio.run() returned, or we are a forked child): nothing can
                # run there any more, so only forget it.
                for conn in group:
                    self._forget(conn)
                continue
            waits.append(run_wait(loop, _closer(group, timeout), timeout))
        if all(wait.done() for wait in waits):
            return Wait(value=all(wait.result() for wait in waits))

        async def wait_all() -> bool:
            results = [await wait for wait in waits]
            return all(results)

        return Wait(factory=wait_all)

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


def _disconnect_each(conns: list[Connection]) -> None:
    for conn in conns:
        conn._disconnect()


def _closer(conns: list[Connection], timeout: float | None) -> Callable[[], Coroutine[Any, Any, bool]]:
    async def wait_closed() -> bool:
        results = await asyncio.gather(*(conn._wait_closed(timeout) for conn in conns))
        return all(results)

    return wait_closed


_default = ConnectionManager()


def default_manager() -> ConnectionManager:
    """The manager behind the module-level functions (`connman.connect()`, ...)."""
    return _default


def _close_all_at_exit() -> None:
    # Close what is still open on connman's own loop thread before it stops (atexit runs this before
    # the thread's own hook, registered earlier). Connections on an application's loop are the
    # application's to close: its loop is usually gone by now.
    thread = portal()
    if not thread.running:
        return
    loop = thread.loop()
    for manager in list(_managers):
        conns = [conn for conn in manager.connections if conn.loop is loop]
        if conns:
            try:
                manager._disconnect_many(conns, EXIT_TIMEOUT)
            except Exception:
                logger.error("closing connections at exit failed", exc_info=True)


atexit.register(_close_all_at_exit)

if hasattr(os, "register_at_fork"):

    def _forget_all_in_child() -> None:
        # A forked child shares the parent's sockets but not its loop thread: the parent's
        # connections are the parent's. The child starts with empty registries.
        for manager in list(_managers):
            manager._connections.clear()
            for pool in manager._pools.values():
                pool._members.clear()
                pool._ids.clear()
            manager._lock = threading.RLock()

    os.register_at_fork(after_in_child=_forget_all_in_child)


def _check_pool_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"pool name must be a non-empty str, not {name!r}")
    if not name:
        raise ValueError("pool name must be a non-empty str, not ''")
