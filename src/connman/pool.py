"""`Pool`: a named set of managed connections that knows which members are up and picks among them."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from . import _pick, events
from ._backoff import _check_seconds
from ._callbacks import resolve_callbacks
from ._discovery import Discovery
from ._options import ConnectOptions, check_endpoint, check_options, check_timeout, document_options
from ._portal import Signal, Wait, home_for_caller, wait_until
from ._state import State
from .connection import Connection, disconnect_many, homes_of
from .errors import NotConnected, PoolNotFound

if TYPE_CHECKING:
    from ._hub import Hub


class PoolOwner(Protocol):
    """What a pool needs of its manager (`ConnectionManager` is one): no import, no private access."""

    @property
    def pools(self) -> dict[str, Pool]:
        """The manager's pools by name."""
        ...

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
        """Open a managed connection."""
        ...

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
        """Open a managed connection to a Unix socket."""
        ...

    def remove_pool(self, name: str, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect a pool's members and forget the pool."""
        ...


__all__ = ["Pool", "PoolOwner"]

_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


class Pool:
    """A named pool of managed connections, made by `create_pool()`.

    Members are the connections added with `add_connection()` and not yet removed or disconnected.
    Every method is safe to call from any thread.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_counter",
        "_discoveries",
        "_hub",
        "_ids",
        "_lock",
        "_manager",
        "_members",
        "_name",
        "_signal",
    )

    def __init__(self, name: str, manager: PoolOwner, hub: Hub | None = None) -> None:
        self._name = name
        self._manager = manager
        self._hub = hub
        self._lock = threading.Lock()
        self._members: list[Connection] = []
        self._ids: list[bytes] = []
        self._counter = 0
        self._closed = False
        self._discoveries: list[Discovery] = []
        #: Fired when membership changes and whenever a member changes (it relays their signals).
        self._signal = Signal()
        _pools.add(self)

    @property
    def name(self) -> str:
        """The pool's name."""
        return self._name

    def __repr__(self) -> str:
        return f"<Pool {self._name!r} [{len(self.connected())}/{len(self)} connected]>"

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._members))

    def __contains__(self, conn: object) -> bool:
        return conn in self._members

    @document_options
    def add_connection(
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
        """Open a managed connection and add it to this pool; the arguments are `connect()`'s.

        Raises:
            PoolNotFound: The pool was closed (`close()` or `remove_pool()`).
        """
        self._check_open()
        conn = self._manager.connect(
            port, host, on_connect=on_connect, on_data=on_data, on_reset=on_reset, handler=handler, **options
        )
        return self._join(conn)

    @document_options
    def add_unix_connection(
        self,
        path: str | os.PathLike[str],
        *,
        on_connect: Callable[[Connection], object] | None = None,
        on_data: Callable[[bytes], object] | None = None,
        on_reset: Callable[[], object] | None = None,
        handler: object = None,
        **options: Unpack[ConnectOptions],
    ) -> Connection:
        """Open a managed connection to the Unix socket at `path` and add it to this pool.

        The arguments are `connect_unix()`'s.

        Raises:
            PoolNotFound: The pool was closed (`close()` or `remove_pool()`).
        """
        self._check_open()
        conn = self._manager.connect_unix(
            path, on_connect=on_connect, on_data=on_data, on_reset=on_reset, handler=handler, **options
        )
        return self._join(conn)

    @document_options
    def discover(
        self,
        port: int,
        host: str,
        *,
        refresh: float = 30.0,
        min_refresh: float | None = None,
        on_connect: Callable[[Connection], object] | None = None,
        on_data: Callable[[bytes], object] | None = None,
        on_reset: Callable[[], object] | None = None,
        handler: object = None,
        **options: Unpack[ConnectOptions],
    ) -> Discovery:
        """Keep one member per address that `host` resolves to, following the name as it changes.

        Members are added when an address appears and disconnected when it disappears, but never
        while that member is the only one up (it goes once another is up). The name is resolved again
        every `refresh` seconds, and sooner (at most once per `min_refresh`) when a member is lost,
        after a failed resolution, and while every member is down. A failed resolution keeps the
        members as they are. Each member connects to its address with the callbacks and options
        given; TLS checks certificates against `host`, not the address. `pick(key)` moves only the
        keys of the members that came or went (rendezvous hashing on `address:port`).

        Args:
            port: The port of every member.
            host: The name to follow; resolved with `resolver` if given (a list: every address),
                else getaddrinfo.
            refresh: Seconds between resolutions while some member is up (> 0; default 30).
            min_refresh: The least seconds between two resolutions (> 0, at most `refresh`; None,
                the default: 1 second, or `refresh` if shorter).

        Returns:
            A `Discovery` handle; `stop()` it to stop following the name (the members stay).
            `disconnect()` and `close()` of the pool stop it too.

        Raises:
            TypeError, ValueError: A bad argument (`refresh` <= 0, say), as `connect()`.
            PoolNotFound: The pool was closed.
        """
        self._check_open()
        endpoint = check_endpoint(port, host)
        _check_seconds("refresh", refresh, positive=True)
        if min_refresh is None:
            min_refresh = min(1.0, refresh)
        _check_seconds("min_refresh", min_refresh, positive=True)
        if min_refresh > refresh:
            raise ValueError(f"min_refresh must be at most refresh ({refresh!r} s), not {min_refresh!r}")
        if "alternates" in options:
            raise ValueError("alternates has no meaning for discover(): its members are the name's addresses")
        checked = check_options(options)
        member_options: dict[str, Any] = {key: value for key, value in options.items() if key != "resolver"}
        if member_options.get("ssl") and "server_hostname" not in member_options:
            member_options["server_hostname"] = endpoint.host  # the certificate names the host
        resolve_callbacks(on_connect, on_data, on_reset, handler, checked.on_error)  # refused here, not later

        def add_member(address: str) -> Connection:
            return self.add_connection(
                endpoint.port,
                address,
                on_connect=on_connect,
                on_data=on_data,
                on_reset=on_reset,
                handler=handler,
                **member_options,
            )

        discovery = Discovery(
            self,
            endpoint,
            checked,
            member_options,
            add_member,
            refresh=float(refresh),
            min_refresh=float(min_refresh),
            home=home_for_caller(),
        )
        with self._lock:
            self._discoveries.append(discovery)
        return discovery

    def stop_discovery(self) -> None:
        """Stop every `discover()` of this pool (the members stay)."""
        with self._lock:
            discoveries, self._discoveries = self._discoveries, []
        for discovery in discoveries:
            discovery.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise PoolNotFound(f"pool {self._name!r} was closed; create a new one with create_pool()")

    def _join(self, conn: Connection) -> Connection:
        with self._lock:
            # Members to one endpoint get distinct ids, so that rendezvous hashing tells them apart:
            # the lowest index that no current member to that endpoint holds. A member added after
            # another was removed takes over the removed one's id, and so its keys.
            prefix = f"{conn.endpoint}#".encode()
            taken = {member_id for member_id in self._ids if member_id.startswith(prefix)}
            index = 0
            while prefix + str(index).encode() in taken:
                index += 1
            self._members.append(conn)
            self._ids.append(prefix + str(index).encode())
        conn.signal.add(self._signal.fire)
        self._publish(events.MemberAdded, conn)
        if conn.state is State.CLOSED:  # disconnected before it joined: it never stays
            self.discard(conn)
        self._signal.fire()
        return conn

    def remove(self, conn: Connection) -> None:
        """Take `conn` out of the pool; it stays managed (and reachable by `disconnect_all()`).

        Raises:
            ValueError: `conn` is not a member.
        """
        if not self.discard(conn):
            raise ValueError(f"{conn!r} is not a member of pool {self._name!r}")

    def discard(self, conn: Connection) -> bool:
        """Take `conn` out of the pool if it is a member; return whether it was.

        The manager calls it when a member is disconnected.
        """
        with self._lock:
            try:
                index = self._members.index(conn)
            except ValueError:
                return False
            del self._members[index]
            del self._ids[index]
        conn.signal.discard(self._signal.fire)
        self._signal.fire()
        self._publish(events.MemberRemoved, conn)
        return True

    def _publish(self, kind: type[events.MemberAdded | events.MemberRemoved], conn: Connection) -> None:
        hub = self._hub
        if hub is not None and hub.listening:
            hub.publish(kind(conn=conn, endpoint=conn.endpoint, at=time.monotonic(), pool=self._name))

    def connected(self) -> list[Connection]:
        """The members that are connected now, in the order they were added. Never waits."""
        return [conn for conn in list(self._members) if conn.is_connected]

    def pick(self, key: str | bytes | int | None = None) -> Connection:
        """A connected member: round-robin, or by `key` with rendezvous hashing.

        With a key, the same key maps to the same member while it is up; when it is down, the key
        moves to its runner-up, and only that member's keys move.

        Raises:
            NotConnected: No member is connected.
            TypeError: `key` is not str, bytes or int.
        """
        with self._lock:
            members, ids = list(self._members), list(self._ids)
            live = [conn.is_connected for conn in members]
            if key is None:
                index, self._counter = _pick.round_robin(self._counter, live)
            else:
                index = _pick.rendezvous(_pick.key_bytes(key), ids, live)
        if index is None:
            raise NotConnected(f"no member of pool {self._name!r} is connected ({len(members)} members)")
        return members[index]

    def disconnect(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect every member (see `Connection.disconnect()`); the pool stays, empty.

        Takes effect at the call, from any thread or loop.

        Returns:
            A `Wait`: True once every member's socket is closed; sync callers block until then.
        """
        check_timeout(timeout)
        self.stop_discovery()  # or it would add members back
        return disconnect_many(list(self._members), timeout)

    def close(self, timeout: float | None = 10.0) -> Wait[bool]:
        """Disconnect every member and remove the pool from its manager (see `remove_pool()`)."""
        check_timeout(timeout)
        self.stop_discovery()
        if not self._closed:
            self._closed = True
            if self._manager.pools.get(self._name) is self:
                return self._manager.remove_pool(self._name, timeout)
        members = list(self._members)
        for conn in members:  # the manager no longer tells a removed pool of its members' end
            self.discard(conn)
        return disconnect_many(members, timeout)

    def wait_any(self, timeout: float | None = None) -> Wait[Connection | None]:
        """Wait until a member is connected; its result is that member, or None on timeout.

        Works from any thread or loop, whatever loops the members live on.
        """
        check_timeout(timeout)

        def first_connected() -> Connection | None:
            live = self.connected()
            return live[0] if live else None

        return wait_until((self._signal,), first_connected, timeout, None, homes_of(list(self._members)))

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._discoveries = []
        self._members.clear()
        self._ids.clear()
        self._signal = Signal()


if hasattr(os, "register_at_fork"):

    def _empty_pools_in_child() -> None:
        # The parent's connections are the parent's (see manager.py): a forked child's pools start empty.
        for pool in list(_pools):
            pool._after_fork_in_child()

    os.register_at_fork(after_in_child=_empty_pools_in_child)
