"""Adapt the application's callbacks, and run them one at a time, in order, isolated from the manager.

A callback may be a plain function or a coroutine function (anything returning an awaitable). Plain
calls run inline, which costs little on the data path. An awaitable result is awaited in a task, and
until it finishes every later callback of the same connection waits in a queue, in order, and reading
is paused: an async `on_data` gets backpressure for free. A callback asked for while another one runs
(`conn.reconnect()` inside `on_data` asks for `on_reset`) waits in the same queue: callbacks of one
connection never overlap, sync or async.

An `on_data` that raises `ProtocolError` is different: the peer broke the protocol, not the callback.
It is logged as a warning and handed to the connection (`Host.protocol_error`), which drops the
connection with `Cause.PROTOCOL`; `on_error` does not run. An `on_data` object with a `reset()` method
(the `connman.framing` splitters) has it called, in turn, each time an attempt or a connection ends,
so that no frame spans two connections.

A callback that raises is logged on the `connman` logger at ERROR with its traceback, and `on_error`,
if the application gave one, runs next, in turn like any callback; the connection carries on.
Exceptions never disappear. That includes `SystemExit` and `KeyboardInterrupt`: raised on the event
loop they would end it (and with it connman's loop thread, for sync users) while every connection
still looked connected. `asyncio.CancelledError` is not caught: it is how `disconnect()` stops an
async callback.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeAlias

from ._datapath import DispatcherBase
from .errors import ProtocolError

__all__ = [
    "Callbacks",
    "Dispatcher",
    "Handler",
    "Host",
    "resolve_callbacks",
    "resume_caller",
    "slow_callback_limit",
]

logger: Final = logging.getLogger("connman")

HOOKS: Final = ("on_connect", "on_data", "on_reset")

#: `CONNMAN_SLOW_CALLBACK`, in seconds, or None when unset; 0 turns the check off.
_SLOW_SETTING: Final = os.environ.get("CONNMAN_SLOW_CALLBACK")

#: A synchronous callback or event listener that runs longer than this, in seconds, is logged as a
#: warning: it blocked the loop, and with it every connection on the loop (asyncio's debug mode uses
#: 0.1 s too). Callbacks are timed only where `slow_callback_limit()` says so.
SLOW_CALLBACK: Final = float(_SLOW_SETTING or "0.1")


def slow_callback_limit(loop: asyncio.AbstractEventLoop, owned: bool) -> float:
    """How long a sync callback on `loop` may run before a warning names it, in seconds; 0: untimed.

    Timing costs two clock readings per callback, about a thousand instructions per received chunk
    on the data path (decision 48), so it follows asyncio, which times its callbacks in debug mode
    only: a connection's callbacks are timed when `CONNMAN_SLOW_CALLBACK` is set (its value; 0 turns
    timing off), when `loop` runs in debug mode (`PYTHONASYNCIODEBUG=1`, `python -X dev`, or
    `loop.set_debug(True)` before the connection is made), and on connman's own loop thread
    (`owned`: the sync API's, where the thread hop costs far more). Anywhere else they are not.
    """
    if _SLOW_SETTING is not None:
        return SLOW_CALLBACK
    return SLOW_CALLBACK if owned or loop.get_debug() else 0.0


_clock: Final = time.perf_counter

ON_ERROR: Final = "on_error"
ON_DATA: Final = "on_data"

#: What connman catches from a callback: everything but the loop's own control flow (see above).
_CAUGHT: Final = (Exception, SystemExit, KeyboardInterrupt)

#: What runs with a callback's result, once known; what it raises counts as the callback's failure.
Then: TypeAlias = Callable[[object], None]
_Call: TypeAlias = tuple[Callable[[Any], object], object, str, Then | None]  # the arguments of `_run`


class Handler(Protocol):
    """An object with the three callbacks as methods, passed as `handler=` instead of functions.

    The original's 2.x style, close to `asyncio.Protocol`. Each method may be sync or async; connman
    calls what the object has.
    """

    def on_connect(self, conn: Any) -> object:
        """Called with the connection each time it is established.

        Again after each loss, unless `on_reset` returned a resume callable.
        """

    def on_data(self, data: bytes) -> object:
        """Called with every chunk of bytes received."""

    def on_reset(self) -> object:
        """Called when an established connection is lost; may return the callable to resume with."""


def _ignore(*args: object) -> None:
    return None


class Callbacks:
    """The three hooks of one connection, plus the error hook, resolved once."""

    __slots__ = ("on_connect", "on_data", "on_error", "on_reset", "reset_data")

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
        #: `on_data.reset`, if `on_data` has one: called when an attempt or a connection ends.
        reset = getattr(on_data, "reset", None)
        self.reset_data: Callable[[], object] | None = reset if callable(reset) else None


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


def _one_argument(fn: Callable[..., object], args: tuple[object, ...]) -> Callable[[object], object]:
    """`fn(*args)` as a call with one (ignored) argument, the data path's shape; named as `fn`."""

    @functools.wraps(fn)
    def call(_: object) -> object:
        return fn(*args)

    return call


def _log_failure(name: str, exc: BaseException) -> None:
    if isinstance(exc, (SystemExit, KeyboardInterrupt)):
        logger.error(
            "%s callback failed: it raised %s, which did not end the program (connman catches what"
            " a callback raises, so that the event loop and its connections carry on)",
            name,
            type(exc).__name__,
            exc_info=exc,
        )
    else:
        logger.error("%s callback failed", name, exc_info=exc)


def _warn_slow(name: str, fn: Callable[..., object], elapsed: float) -> None:
    logger.warning(
        "%s callback %s blocked the event loop for %.3f s; every connection on the loop waited."
        " Hand long work to a thread (loop.run_in_executor) or make the callback async",
        name,
        getattr(fn, "__qualname__", repr(fn)),
        elapsed,
    )


class Host(Protocol):
    """What a dispatcher tells the connection it serves."""

    def callbacks_busy(self, busy: bool) -> None:
        """An async callback started (True) or the last one in a row ended (False)."""

    def protocol_error(self, error: ProtocolError) -> None:
        """`on_data` raised `ProtocolError`: the peer broke the protocol, drop the connection."""


class Dispatcher(DispatcherBase):
    """Run one connection's callbacks one at a time, in the order they were asked for.

    One path runs them all (`deliver`, for `on_data`, is its one-call case written out): `_run` calls
    a callback, times it, and catches and reports what it raises, then runs what was asked for
    meanwhile, in order, until a callback returns an awaitable; `_await` awaits that in a task and
    hands what queued meanwhile back to `_run`. From the call to the end of the await, `_running` is
    set and every new call queues, so callbacks never overlap, even when one asks for another
    (`conn.reconnect()` inside `on_data` asks for `on_reset`).
    """

    __slots__ = (
        "_host",
        "_loop",
        "_on_error",
        "_task",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[BaseException], object] | None,
        host: Host,
        *,
        slow: float,
    ) -> None:
        self._loop = loop
        #: A sync callback running longer than this, in seconds, is named in a warning; 0: untimed
        #: (see `slow_callback_limit()`).
        self._slow = slow
        self._on_error = on_error
        # The connection, told when a callback keeps it busy and when on_data finds a broken
        # protocol: one reference rather than two bound methods (W4 keeps 10,000 dispatchers).
        self._host = host
        # Made on first use: most connections never queue a callback, and an empty deque is 600 bytes.
        self._queue = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    @property
    def busy(self) -> bool:
        """Whether an async callback is being awaited (reading is paused, later calls are queued)."""
        return self._task is not None

    def call(
        self,
        name: str,
        fn: Callable[..., object],
        args: tuple[object, ...] = (),
        then: Then | None = None,
    ) -> None:
        """Call `fn(*args)` now, or once the callbacks running and queued before it are done.

        `then(result)` runs with the result (awaited first, if it is awaitable); an exception it
        raises is reported as a failure of `name`, as if `fn` had raised it.
        """
        if len(args) == 1:
            self._run(fn, args[0], name, then)
        else:
            self._run(_one_argument(fn, args), None, name, then)

    def ask(self, name: str, fn: Callable[..., object], *args: object) -> bool:
        """Call the predicate `fn(*args)` now and return its answer as a bool.

        Not in turn with the callbacks: the answer is needed at once (a predicate should only look at
        its arguments). What it raises, or an awaitable it returns (a predicate cannot be async), is
        reported like a failing callback, and the answer is then True.
        """
        slow = self._slow
        started = _clock() if slow else 0.0
        try:
            answer = fn(*args)
            if inspect.isawaitable(answer):
                if inspect.iscoroutine(answer):
                    answer.close()
                raise TypeError(
                    f"{name} must return a bool, not an awaitable ({answer!r}); it cannot be async"
                )
            return bool(answer)
        except _CAUGHT as exc:
            _log_failure(name, exc)
            if self._on_error is not None:
                self.call(ON_ERROR, self._on_error, (exc,))
            return True
        finally:
            if slow and (elapsed := _clock() - started) > slow:
                _warn_slow(name, fn, elapsed)

    def clear(self) -> asyncio.Task[None] | None:
        """Drop queued callbacks and cancel a running async one (unless we are inside it).

        Returns the task still running, if any, for `wait_closed()` to wait on.
        """
        if self._queue:
            self._queue.clear()
        self._on_error = None  # nothing fires after disconnect(), on_error included
        task = self._task
        if task is not None and task is not asyncio.current_task(self._loop):
            task.cancel()
        return task

    def _run(
        self,
        fn: Callable[[Any], object],
        arg: object,
        name: str = ON_DATA,
        then: Then | None = None,
    ) -> None:
        if self._running:
            self._enqueue((fn, arg, name, then))
            return
        self._running = True
        slow = self._slow
        while True:
            started = _clock() if slow else 0.0
            try:
                result = fn(arg)
                if result is not None and inspect.isawaitable(result):
                    break
                if then is not None:
                    then(result)
            except _CAUGHT as exc:
                self._failed(name, exc)
            except BaseException:
                self._running = False  # not ours to catch (a CancelledError): stay usable, let it through
                raise
            finally:
                if slow and (elapsed := _clock() - started) > slow:
                    _warn_slow(name, fn, elapsed)
            queue = self._queue
            if not queue:
                self._running = False  # (a task handing over to us ends the turn itself: `_await`)
                return
            fn, arg, name, then = queue.popleft()
        self._await_in_task(name, result, then)

    def deliver(self, fn: Callable[[bytes], object], data: bytes) -> None:
        """`call("on_data", fn, (data,))`, in fewer steps: the data path runs it once per read.

        The common case, nothing running or queued and callbacks untimed, runs here (and in C, in
        `_speedups`' `Receiver.data_received`); the rest goes through `_run`, whose loop this is with
        one call in it (decision 53).
        """
        if self._running or self._slow:
            self._run(fn, data)
            return
        self._running = True
        error: BaseException | None = None
        try:
            result = fn(data)
        except _CAUGHT as exc:
            result, error = None, exc  # reported outside the except block, as the C form does
        except BaseException:
            self._running = False
            raise
        else:
            if result is None and not self._queue:
                self._running = False
                return
        self._delivered(result, error)

    def _delivered(self, result: object, exc: BaseException | None) -> None:
        # deliver()'s end when fn raised `exc`, returned an awaitable or asked for more meanwhile.
        if exc is not None:
            self._failed(ON_DATA, exc)
        elif result is not None and inspect.isawaitable(result):
            self._await_in_task(ON_DATA, result, None)
            return
        self._running = False
        if self._queue:  # what fn asked for (conn.reconnect() asks for on_reset), or on_error
            self._run(*self._queue.popleft())

    def _enqueue(self, call: _Call, first: bool = False) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if first:
            queue.appendleft(call)
        else:
            queue.append(call)

    def _failed(self, name: str, exc: BaseException) -> None:
        if name == ON_DATA and isinstance(exc, ProtocolError):
            logger.warning("the peer broke the protocol: %s; dropping the connection", exc)
            self._host.protocol_error(exc)
            return
        _log_failure(name, exc)
        on_error = self._on_error
        if on_error is not None and name != ON_ERROR:  # on_error's own failure is only logged
            # Next in line, ahead of what the failed callback asked for: it is about that callback.
            self._enqueue((on_error, exc, ON_ERROR, None), first=True)

    def _await_in_task(self, name: str, awaitable: Awaitable[object], then: Then | None) -> None:
        already_busy = self._task is not None  # one async callback handing over to the next
        task = self._task = self._loop.create_task(self._await(name, awaitable, then))
        # A done callback, not a `finally`: a task cancelled before its first step never runs
        # its body, and the application's coroutine inside it must still be closed.
        task.add_done_callback(lambda task: self._finished(task, awaitable))
        if not already_busy:
            self._host.callbacks_busy(True)

    async def _await(self, name: str, awaitable: Awaitable[object], then: Then | None) -> None:
        try:
            result = await awaitable
            if then is not None:
                then(result)
        except _CAUGHT as exc:
            self._failed(name, exc)
        # The turn goes on with what queued meanwhile, and ends here, in this step: a call made
        # between the end of this body and `_finished` would otherwise queue and wait for nothing.
        if self._queue:
            self._running = False
            self._run(*self._queue.popleft())  # it may hand over to a task of its own
        if self._task is asyncio.current_task(self._loop):
            self._end_await()

    def _finished(self, task: asyncio.Task[None], awaitable: Awaitable[object]) -> None:
        if inspect.iscoroutine(awaitable) and inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED:
            awaitable.close()  # cancelled before it started: no "coroutine was never awaited"
        if self._task is task:  # cancelled (or ended by an exception we let through)
            self._end_await()

    def _end_await(self) -> None:
        self._task = None
        self._running = False
        self._host.callbacks_busy(False)
