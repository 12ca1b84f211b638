"""Shared fixtures: real loopback servers, a manager per test, bounded waits, leak checks."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypedDict

import pytest

import connman
from connman.testing import EchoServer

#: The time unit of the tests, in seconds; scale it on a slow machine with CONNMAN_TEST_MS=5.
MS = float(os.environ.get("CONNMAN_TEST_MS", "1")) / 1000

#: A backoff that retries quickly, so that tests of recovery take milliseconds.
FAST = connman.Backoff(initial=5 * MS, factor=1.5, cap=50 * MS, jitter="none", min_uptime=0.5)

#: A backoff whose first wait (30 s) outlasts any test: the connection stays WAITING.
SLOW = connman.Backoff(initial=30, cap=30, jitter="none")

#: A bound for waits that should succeed quickly; reaching it means the test failed.
BOUND = 5.0


class Hooks(TypedDict):
    on_connect: Callable[[connman.Connection], object]
    on_data: Callable[[bytes], object]
    on_reset: Callable[[], object]


class Recorder:
    """Records callback events and lets a test wait, with a bound, for the n-th of a kind."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.data = bytearray()
        self._changed = asyncio.Event()

    def add(self, kind: str, value: Any = None) -> None:
        self.events.append((kind, value))
        self._changed.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)

    # Callbacks to hand to connect(); each records what it saw.
    def on_connect(self, conn: connman.Connection) -> None:
        self.add("connect", conn)

    def on_data(self, data: bytes) -> None:
        self.data += data
        self.add("data", data)

    def on_reset(self) -> None:
        self.add("reset")

    def callbacks(self) -> Hooks:
        return {"on_connect": self.on_connect, "on_data": self.on_data, "on_reset": self.on_reset}

    async def until(self, predicate: Callable[[], bool], timeout: float = BOUND) -> None:
        """Wait until `predicate()` holds; fail the test after `timeout` seconds.

        It is checked after every recorded event, and every 10 ms for conditions that no callback
        reports (a server's client count, say).
        """
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                try:
                    async with asyncio.timeout(0.01):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    async def wait(self, kind: str, count: int = 1, timeout: float = BOUND) -> None:
        await self.until(lambda: self.count(kind) >= count, timeout)

    async def wait_bytes(self, count: int, timeout: float = BOUND) -> None:
        await self.until(lambda: len(self.data) >= count, timeout)


@pytest.fixture
async def server() -> AsyncIterator[EchoServer]:
    async with EchoServer() as echo:
        yield echo


@pytest.fixture
async def down_server() -> AsyncIterator[EchoServer]:
    """A server that is not listening (its port refuses) until the test calls `start()`."""
    echo = EchoServer()
    await echo.start()
    await echo.stop()
    yield echo
    await echo.stop()


@pytest.fixture
async def cm() -> AsyncIterator[connman.ConnectionManager]:
    manager = connman.ConnectionManager()
    yield manager
    async with asyncio.timeout(BOUND):
        await manager.aclose()
    assert len(manager) == 0
    assert_nothing_pending()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def until_conn(conn: connman.Connection, done: Callable[[], bool], timeout: float = BOUND) -> None:
    """Wait until `done()` holds, re-checked at every change of `conn`; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not done():
            await conn.wait_changed()


def assert_nothing_pending() -> None:
    """Like Twisted's tests: no task and no timer left behind by connman on this loop."""
    loop = asyncio.get_running_loop()
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    # An attempt's task runs the loop's own create_connection(): it is connman's by its done callback.
    leftover = [
        t
        for t in tasks
        if "connman" in repr(t.get_coro())
        or any(_calls_connman(callback) for callback, _ in getattr(t, "_callbacks", None) or ())
    ]
    assert leftover == []
    timers = [
        handle
        for handle in getattr(loop, "_scheduled", [])
        if not handle.cancelled() and ("connman" in repr(handle) or _calls_connman(handle._callback))
    ]
    assert timers == []
    # A socket connman connects itself waits on a writer callback (`ManagedProtocol.connect`).
    selector = getattr(loop, "_selector", None)
    watched = [] if selector is None else list(selector.get_map().values())
    writers = [key.fd for key in watched if key.data[1] is not None and _calls_connman(key.data[1]._callback)]
    assert writers == []


def _calls_connman(callback: object) -> bool:
    # Outside debug mode a handle's repr names its callback but not the callback's module.
    owner = getattr(callback, "__self__", None)
    module = getattr(callback, "__module__", None) or type(owner).__module__
    return str(module).startswith("connman")


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    # Unclosed sockets and transports warn when collected; collecting here pins the warning (an
    # error, under filterwarnings) on the test that leaked them, not on a later one.
    yield
    gc.collect()
