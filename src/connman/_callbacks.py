"""Adapt the application's callbacks, and run them in order, isolated from the manager.

A callback may be a plain function or a coroutine function (anything returning an awaitable). Plain
calls run inline, which costs nothing on the data path. An awaitable result is awaited in a task, and
until it finishes every later callback of the same connection waits in a queue, in order, and reading
is paused: an async `on_data` gets backpressure for free.

A callback that raises is logged on the `connman` logger at ERROR with its traceback and handed to
`on_error` if the application gave one; the connection carries on. Exceptions never disappear.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

__all__ = ["Callbacks", "Dispatcher", "Handler", "resolve_callbacks", "resume_caller"]

logger: Final = logging.getLogger("connman")

HOOKS: Final = ("on_connect", "on_data", "on_reset")

#: A synchronous callback that runs longer than this, in seconds, is logged as a warning: it blocked
#: the loop, and with it every connection on the loop (asyncio's debug mode uses 0.1 s too).
#: `CONNMAN_SLOW_CALLBACK` overrides it; 0 turns the check off.
SLOW_CALLBACK: Final = float(os.environ.get("CONNMAN_SLOW_CALLBACK", "0.1"))

_clock: Final = time.perf_counter


class Handler(Protocol):
    """An object with the three callbacks as methods (the original's 2.x style, close to
    `asyncio.Protocol`). Each method may be sync or async; connman calls what the object has."""

    def on_connect(self, conn: Any) -> object:
        """Called when the connection is established (and again after each loss, unless
        `on_reset` returned a resume callable)."""

    def on_data(self, data: bytes) -> object:
        """Called with every chunk of bytes received."""

    def on_reset(self) -> object:
        """Called when an established connection is lost; may return the callable to resume with."""


def _ignore(*args: object) -> None:
    return None


class Callbacks:
    """The three hooks of one connection, plus the error hook, resolved once."""

    __slots__ = ("on_connect", "on_data", "on_error", "on_reset")

    def __init__(
        self,
        on_connect: Callable[..., object],
        on_data: Callable[[bytes], object],
        on_reset: Callable[[], object],
        on_error: Callable[[BaseException], object] | None,
    ) -> None:
        self.on_connect = on_connect
        self.on_data = on_data
        self.on_reset = on_reset
        self.on_error = on_error


def resolve_callbacks(
    on_connect: object,
    on_data: object,
    on_reset: object,
    handler: object,
    on_error: Callable[[BaseException], object] | None,
) -> Callbacks:
    """Check the callbacks given to `connect()`; missing ones become no-ops."""
    given = {"on_connect": on_connect, "on_data": on_data, "on_reset": on_reset}
    if handler is not None:
        both = [name for name, value in given.items() if value is not None]
        if both:
            raise TypeError(f"pass either handler or callbacks, not both (got handler and {', '.join(both)})")
        found = {name: getattr(handler, name, None) for name in HOOKS}
        if all(value is None for value in found.values()):
            raise TypeError(
                f"handler must have at least one of on_connect, on_data, on_reset; got {handler!r}"
            )
        given = found
        label = "handler."
    else:
        label = ""
    for name, value in given.items():
        if value is not None and not callable(value):
            raise TypeError(f"{label}{name} must be callable or None, not {value!r}")
    return Callbacks(
        given["on_connect"] or _ignore,  # type: ignore[arg-type]
        given["on_data"] or _ignore,  # type: ignore[arg-type]
        given["on_reset"] or _ignore,  # type: ignore[arg-type]
        on_error,
    )


def resume_caller(resume: object, conn: object) -> Callable[[], object]:
    """Turn what `on_reset` returned into a zero-argument call.

    The original's example returns a zero-argument function; a Python user may as well return
    `on_connect`-like functions that take the connection. We look at the signature once.
    """
    if not callable(resume):
        raise TypeError(f"on_reset must return a callable or None, not {resume!r}")
    try:
        signature = inspect.signature(resume)
        signature.bind(conn)
    except TypeError:
        return resume
    except ValueError:  # builtins without a signature: assume they take the connection
        pass
    return lambda: resume(conn)


def report(name: str, exc: BaseException, on_error: Callable[[BaseException], object] | None) -> None:
    """Log a failed callback and hand the exception to `on_error`; never raise."""
    logger.error("%s callback failed", name, exc_info=exc)
    if on_error is not None:
        try:
            on_error(exc)
        except Exception:
            logger.error("on_error callback failed", exc_info=True)


def _warn_slow(name: str, fn: Callable[..., object], elapsed: float) -> None:
    logger.warning(
        "%s callback %s blocked the event loop for %.3f s; every connection on the loop waited."
        " Hand long work to a thread (loop.run_in_executor) or make the callback async",
        name,
        getattr(fn, "__qualname__", repr(fn)),
        elapsed,
    )


class Dispatcher:
    """Run one connection's callbacks in order; awaitable results one at a time."""

    __slots__ = ("_busy", "_loop", "_on_busy", "_on_error", "_queue", "_task")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[BaseException], object] | None,
        on_busy: Callable[[bool], None],
    ) -> None:
        self._loop = loop
        self._on_error = on_error
        self._on_busy = on_busy
        # Made on first use: most connections never queue a callback, and an empty deque is 600 bytes.
        self._queue: deque[tuple[str, Callable[..., object], tuple[object, ...], Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    @property
    def busy(self) -> bool:
        """Whether an async callback is running (so later calls are queued)."""
        return self._busy

    def call(
        self,
        name: str,
        fn: Callable[..., object],
        args: tuple[object, ...] = (),
        then: Callable[[object], None] | None = None,
    ) -> None:
        """Call `fn(*args)` now, or after the callbacks queued before it; give its result to `then`."""
        if self._busy:
            if self._queue is None:
                self._queue = deque()
            self._queue.append((name, fn, args, then))
            return
        self._run(name, fn, args, then)

    def deliver(self, fn: Callable[[bytes], object], data: bytes) -> None:
        """`call("on_data", fn, (data,))`, specialised: the data path runs this once per read."""
        if self._busy:
            self.call("on_data", fn, (data,))  # queued behind the async callback running
            return
        started = _clock()
        try:
            result = fn(data)
        except Exception as exc:
            report("on_data", exc, self._on_error)
            return
        finally:
            if SLOW_CALLBACK > 0 and (elapsed := _clock() - started) > SLOW_CALLBACK:
                _warn_slow("on_data", fn, elapsed)
        if result is not None and inspect.isawaitable(result):
            self._await_in_task("on_data", result, None)

    def _run(
        self,
        name: str,
        fn: Callable[..., object],
        args: tuple[object, ...],
        then: Callable[[object], None] | None,
    ) -> None:
        started = time.perf_counter()
        try:
            result = fn(*args)
        except Exception as exc:
            report(name, exc, self._on_error)
            return
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > SLOW_CALLBACK > 0:
                _warn_slow(name, fn, elapsed)
        if inspect.isawaitable(result):
            self._await_in_task(name, result, then)
        elif then is not None:
            then(result)

    def _await_in_task(
        self, name: str, result: Awaitable[object], then: Callable[[object], None] | None
    ) -> None:
        self._busy = True
        self._on_busy(True)
        task = self._task = self._loop.create_task(self._await(name, result, then))
        # A done callback, not a `finally`: a task cancelled before its first step never runs
        # its body, and the application's coroutine inside it must still be closed.
        task.add_done_callback(lambda task: self._finished(task, result))

    async def _await(
        self, name: str, awaitable: Awaitable[object], then: Callable[[object], None] | None
    ) -> None:
        while True:
            try:
                result = await awaitable
            except Exception as exc:
                report(name, exc, self._on_error)
            else:
                if then is not None:
                    then(result)
            # Drain what queued up meanwhile, inline while it stays synchronous.
            while self._queue:
                name, fn, args, then = self._queue.popleft()
                try:
                    result = fn(*args)
                except Exception as exc:
                    report(name, exc, self._on_error)
                    continue
                if inspect.isawaitable(result):
                    awaitable = result
                    break
                if then is not None:
                    then(result)
            else:
                return

    def _finished(self, task: asyncio.Task[None], first: object) -> None:
        if inspect.iscoroutine(first) and inspect.getcoroutinestate(first) == inspect.CORO_CREATED:
            first.close()  # cancelled before it started: no "coroutine was never awaited"
        if self._task is task:
            self._task = None
            self._busy = False
            self._on_busy(False)

    def clear(self) -> asyncio.Task[None] | None:
        """Drop queued callbacks and cancel a running async one (unless we are inside it).

        Returns the task still running, if any, for `wait_closed()` to wait on.
        """
        if self._queue:
            self._queue.clear()
        task = self._task
        if task is not None and task is not asyncio.current_task(self._loop):
            task.cancel()
        return task
