"""`Discovery`: keeps a pool's members in step with the addresses a name resolves to.

gRPC's lessons, taken as the rules: re-resolve every `refresh` seconds and at once when a member is
lost (but at most once per `min_refresh`: grpc-node #2023 was a DNS storm), keep re-resolving while
every member is down, and never drop the last member that is up because the name stopped listing it.
Everything runs on the loop the members live on; `stop()` works from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ._dial import resolve
from ._options import Endpoint, Options
from ._portal import Home
from ._state import State
from .errors import LoopGone, PoolNotFound

if TYPE_CHECKING:
    from .connection import Connection
    from .pool import Pool

__all__ = ["Discovery"]

logger: Final = logging.getLogger("connman")

_now: Final = time.monotonic


class Discovery:
    """Follows the addresses of a name for a pool: made by `Pool.discover()`, never directly.

    The pool keeps one member per address: added when the address appears, disconnected when it
    disappears (unless it is the only member up; then once another is up).
    """

    def __init__(
        self,
        pool: Pool,
        endpoint: Endpoint,
        options: Options,
        member_options: Mapping[str, Any],
        add_member: Callable[[str], Connection],
        *,
        refresh: float,
        min_refresh: float,
        home: Home,
    ) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._options = options
        self._member_options = member_options
        self._add_member = add_member
        self._refresh = refresh
        self._min_refresh = min_refresh
        self._home = home
        self._members: dict[str, Connection] = {}  # address -> member, in the order they appeared
        self._stale: set[str] = set()  # gone from the name, kept while the only member up
        self._was_up: set[Connection] = set()
        self._lost = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        #: Resolutions done, and the last error (None after a success).
        self.resolutions = 0
        self.last_error: BaseException | None = None
        home.submit(self._start)

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        return f"<Discovery {self._endpoint} {state} [{len(self._members)} addresses]>"

    @property
    def addresses(self) -> list[str]:
        """The addresses that have a member now (stale ones included), in the order they appeared."""
        return list(self._members)

    @property
    def running(self) -> bool:
        """False once stopped (`stop()`, or the pool's `disconnect()` / `close()`)."""
        return not self._stopped

    def stop(self) -> None:
        """Stop following the name; the members stay as they are. Idempotent, from any thread."""
        self._stopped = True
        try:
            self._home.submit(self._stop_here)
        except LoopGone:
            pass

    # ---- on the loop ---------------------------------------------------------------------------

    def _start(self) -> None:
        if not self._stopped:
            self._wake = asyncio.Event()
            self._task = self._home.loop.create_task(self._run(), name=f"connman-discover {self._endpoint}")

    def _stop_here(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        for conn in self._members.values():
            conn.signal.discard(self._member_changed)

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._stopped:
            started = _now()
            self._lost = False
            wake.clear()
            try:
                self._apply(await self._resolve())
            except PoolNotFound:  # the pool was closed from another thread meanwhile
                self._stopped = True
                return
            except Exception as exc:  # a failed resolution keeps the members as they are
                self.last_error = exc
                logger.warning("resolving %s for pool %r failed: %r", self._endpoint, self._pool.name, exc)
            else:
                self.last_error = None
            self.resolutions += 1
            while not self._stopped:
                delay = self._next_delay() - (_now() - started)
                if delay <= 0:
                    break
                wake.clear()
                try:
                    async with asyncio.timeout(delay):
                        await wake.wait()
                except TimeoutError:
                    pass

    def _next_delay(self) -> float:
        # At most once per min_refresh: after a loss, after a failure, or while every member is down.
        if self._lost or self.last_error is not None:
            return self._min_refresh
        if not any(conn.is_connected for conn in self._members.values()):
            return self._min_refresh
        return self._refresh

    async def _resolve(self) -> list[str]:
        endpoint, options = self._endpoint, self._options
        async with asyncio.timeout(options.connect_timeout):
            if options.resolver is not None:
                return await resolve(options.resolver, endpoint)
            family = options.create_connection.get("family", 0)
            infos = await self._home.loop.getaddrinfo(
                endpoint.host, endpoint.port, family=family, type=socket.SOCK_STREAM
            )
        return [str(info[4][0]) for info in infos]

    def _apply(self, resolved: list[str]) -> None:
        addresses = list(dict.fromkeys(resolved))  # unique, in order
        self._forget_the_applications()
        for address in addresses:
            self._stale.discard(address)
            if address not in self._members:
                conn = self._add_member(address)
                self._members[address] = conn
                if conn.is_connected:
                    self._was_up.add(conn)
                conn.signal.add(self._member_changed)
        self._stale.update(address for address in self._members if address not in addresses)
        self._drop_stale()

    def _forget_the_applications(self) -> None:
        # Disconnected by the application, or taken out of the pool (`pool.remove()`): the connection
        # is no member any more, so its address gets a new one, and the old one is never touched.
        for address, conn in list(self._members.items()):
            if conn.state is State.CLOSED or conn not in self._pool:
                self._forget(address)

    def _drop_stale(self) -> None:
        self._forget_the_applications()
        for address in sorted(self._stale, key=lambda address: self._members[address].is_connected):
            conn = self._members[address]
            others_up = any(other.is_connected for key, other in self._members.items() if key != address)
            if conn.is_connected and not others_up:
                continue  # the only member up: kept until another is
            self._forget(address)
            conn.disconnect()

    def _forget(self, address: str) -> None:
        conn = self._members.pop(address)
        self._stale.discard(address)
        self._was_up.discard(conn)
        conn.signal.discard(self._member_changed)

    def _member_changed(self) -> None:
        if threading.get_ident() != self._home.thread_id:
            try:
                self._home.loop.call_soon_threadsafe(self._member_changed)
            except RuntimeError:  # the loop has closed
                pass
            return
        if self._stopped:
            return
        # Signals fire on every change (writability too): act only when who is up changed.
        up = {conn for conn in self._members.values() if conn.is_connected}
        if up == self._was_up:
            return
        if self._was_up - up:
            self._lost = True  # re-resolve now (within min_refresh): the address may have moved
        self._was_up = up
        if self._stale:
            self._drop_stale()
        if self._wake is not None:
            self._wake.set()  # the wait re-evaluates its delay
