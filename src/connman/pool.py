"""`Pool`: a named set of managed connections that knows which members are up and picks among them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Unpack

from . import _pick
from ._options import ConnectOptions, check_timeout
from ._thread import Wait, run_wait
from .connection import Connection
from .errors import NotConnected

if TYPE_CHECKING:
    from .manager import ConnectionManager

__all__ = ["Pool"]


class Pool:
    """A named pool of managed connections, made by `create_pool()`.

    Members are the connections added with `add_connection()` and not yet removed or disconnected.
    Every method is safe to call from any thread.
    """

    __slots__ = ("_change", "_counter", "_ids", "_manager", "_members", "_name")

    def __init__(self, name: str, manager: ConnectionManager) -> None:
        self._name = name
        self._manager = manager
        self._members: list[Connection] = []
        self._ids: list[bytes] = []
        self._counter = 0
        self._change: asyncio.Future[None] | None = None

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
        """Open a managed connection and add it to this pool; the arguments are `connect()`'s."""
        conn = self._manager._open(port, host, on_connect, on_data, on_reset, handler, options)
        with self._manager._lock:
            # Members to the same endpoint get distinct ids, so rendezvous hashing tells them apart.
            same = sum(1 for member in self._members if member.endpoint == conn.endpoint)
            self._members.append(conn)
            self._ids.append(f"{conn.endpoint}#{same}".encode())
        self._members_changed()
        return conn

    def remove(self, conn: Connection) -> None:
        """Take `conn` out of the pool; it stays managed (and reachable by `disconnect_all()`).

        Raises:
            ValueError: `conn` is not a member.
        """
        with self._manager._lock:
            if not self._discard(conn):
                raise ValueError(f"{conn!r} is not a member of pool {self._name!r}")

    def _discard(self, conn: Connection) -> bool:
        try:
            index = self._members.index(conn)
        except ValueError:
            return False
        del self._members[index]
        del self._ids[index]
        return True

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
        with self._manager._lock:
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

        Returns:
            A `Wait`: await it in async code to wait until every socket is closed; sync callers block.
        """
        check_timeout(timeout)
        return self._manager._disconnect_many(list(self._members), timeout)

    def wait_any(self, timeout: float | None = None) -> Wait[Connection | None]:
        """Wait until a member is connected; its result is that member, or None on timeout.

        The members must live on one event loop (they do unless you add them from several loops).
        """
        check_timeout(timeout)
        members = list(self._members)
        loop = members[0].loop if members else self._manager._loop_for_caller()[0]
        return run_wait(loop, lambda: self._wait_any(loop, timeout), timeout)

    async def _wait_any(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> Connection | None:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    live = self.connected()
                    if live:
                        return live[0]
                    if self._change is None or self._change.done():
                        self._change = loop.create_future()
                    changes: list[asyncio.Future[Any]] = [asyncio.shield(self._change)]
                    changes += [conn.changed() for conn in self._members]
                    try:
                        await asyncio.wait(changes, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for change in changes:
                            change.cancel()
        except TimeoutError:
            return None

    def _members_changed(self) -> None:
        change = self._change
        if change is not None and not change.done():
            change.get_loop().call_soon_threadsafe(_resolve, change)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
