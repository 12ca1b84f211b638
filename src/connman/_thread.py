"""The background event-loop thread that lets plain synchronous code use the asyncio driver.

One daemon thread, "connman-loop", is started on first use from code with no running loop (like
paho-mqtt's `loop_start()`); connections created from sync code live on it and their callbacks run on it.
This is anyio's blocking portal: there is one driver, and sync callers reach it by marshalling calls
into the loop thread. A call from the loop thread itself (a callback) never blocks.

`Wait` is what every waiting call returns, so one method serves both worlds: async code awaits it; in
sync code the call has already blocked and the object holds the answer.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Final, Generic, TypeVar

__all__ = ["LoopThread", "Wait", "portal", "run_wait", "running_loop"]

T = TypeVar("T")
logger: Final = logging.getLogger("connman")

#: Set to "0" to keep the background thread on asyncio's default loop even when uvloop is installed.
UVLOOP_ENV: Final = "CONNMAN_UVLOOP"

_PENDING: Final[Any] = object()


class Wait(Generic[T]):
    """The result of a call that may wait: `await` it in async code; in sync code it is already done.

    In sync code the call blocked until the outcome was known: `result()` returns it and `bool()` is its
    truth (`if conn.wait_connected(5): ...`). In async code nothing has happened yet: `await` it.
    """

    __slots__ = ("_factory", "_value")

    def __init__(
        self,
        *,
        factory: Callable[[], Coroutine[Any, Any, T]] | None = None,
        value: Any = _PENDING,
    ) -> None:
        self._factory = factory
        self._value = value

    def __await__(self) -> Generator[Any, None, T]:
        if self._value is not _PENDING:
            return self._value  # type: ignore[no-any-return]
        assert self._factory is not None
        return (yield from self._factory().__await__())

    def done(self) -> bool:
        """Whether the outcome is known already (always, for a sync caller)."""
        return self._value is not _PENDING

    def result(self) -> T:
        """The outcome, for a sync caller.

        Raises:
            RuntimeError: Called in async code on a `Wait` that was not awaited.
        """
        if self._value is _PENDING:
            raise RuntimeError("this wait runs in the event loop: use `await` on it")
        return self._value  # type: ignore[no-any-return]

    def __bool__(self) -> bool:
        return bool(self.result())

    def __repr__(self) -> str:
        if self._value is _PENDING:
            return "<Wait pending: await it>"
        return f"<Wait done: {self._value!r}>"


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None in plain sync code."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def run_wait(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], Coroutine[Any, Any, T]],
    timeout: float | None,
) -> Wait[T]:
    """Run a waiting coroutine on `loop` the way the caller's context needs.

    - On `loop` itself: return a pending `Wait` for the caller to await (never block a loop).
    - On another running loop: the `Wait` awaits a future bridged from `loop`.
    - In plain sync code: block until done (bounded by `timeout` plus a margin) and return the value.
    """
    running = running_loop()
    if running is loop:
        return Wait(factory=factory)
    if loop.is_closed() or not loop.is_running():
        raise RuntimeError("the connection's event loop is not running any more")
    if running is not None:

        async def bridged() -> T:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(factory(), loop))

        return Wait(factory=bridged)
    future = asyncio.run_coroutine_threadsafe(factory(), loop)
    # The coroutine applies `timeout` itself; the margin only guards against a stuck loop.
    try:
        return Wait(value=future.result(None if timeout is None else timeout + 5.0))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError("connman's event loop did not answer in time") from None


def _new_loop() -> asyncio.AbstractEventLoop:
    if os.environ.get(UVLOOP_ENV, "1") != "0":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class LoopThread:
    """One lazily started daemon thread running an event loop; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread_id(self) -> int | None:
        """The loop thread's `threading.get_ident()`, or None when not started."""
        return None if self._thread is None else self._thread.ident

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, starting the thread on first use (and again after `stop()` or a fork)."""
        loop = self._loop
        if loop is not None and self.running:
            return loop
        with self._lock:
            if self._loop is None or not self.running:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        ready = threading.Event()
        loop = _new_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            try:
                loop.run_forever()
            finally:
                _close_loop(loop)

        thread = threading.Thread(target=run, name="connman-loop", daemon=True)
        self._loop = loop
        self._thread = thread
        thread.start()
        ready.wait()
        logger.debug("= started the background loop thread (%s)", type(loop).__module__)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, cancel what is left on it and join the thread (idempotent).

        `connman.manager` closes the connections first, at exit (atexit runs it before this).
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.get_ident() == thread.ident:
            raise RuntimeError("the loop thread cannot stop itself; call stop() from another thread")
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Cancel what is left and let it finish, so that nothing reports "Task was destroyed but it is
    # pending" at exit.
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


_portal = LoopThread()
atexit.register(_portal.stop)

if hasattr(os, "register_at_fork"):
    # The child of a fork has no loop thread, only a copy of its state: start afresh on next use.
    def _forget_in_child() -> None:
        global _portal
        _portal = LoopThread()
        atexit.register(_portal.stop)

    os.register_at_fork(after_in_child=_forget_in_child)


def portal() -> LoopThread:
    """The process's background loop thread."""
    return _portal
