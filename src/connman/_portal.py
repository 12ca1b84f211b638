"""The one door between threads and loops: where a call runs, how a caller waits, exit and fork.

Every public method of `Connection`, `Pool` and `ConnectionManager` goes through here, and one rule
holds wherever it is called from (the connection's own loop, another running loop, plain sync code):

    **Side effects happen at the call; awaiting only waits.**

- `Home.submit(fn)` carries out a side effect: inline when the caller is on the connection's loop
  thread, otherwise handed to that loop at once (`call_soon_threadsafe`), so it runs at the loop's next
  turn whether or not anybody awaits anything. A loop that has ended is reported (`LoopGone`), so the
  caller can close what it can by hand.
- `wait_until(signals, predicate, timeout)` is the only way to wait. The predicate is evaluated in the
  *caller's* thread, woken by the `Signal`s it names, and the timeout is kept by the caller's own clock:
  a wait returns at its timeout even while connman's loop is stuck in an application's callback, and
  it never raises for the timeout. Sync callers block on a `threading.Event`; async callers, on the
  connection's loop or any other, await an `asyncio.Event` of their own loop. Nothing is marshalled.
- `Wait` is what a waiting call returns, so one method serves both worlds: async code awaits it; in
  sync code the call has already blocked and the object holds the answer.

The background loop thread ("connman-loop", anyio's blocking portal) runs connections made from code
with no running loop. Its exit is ordered here, in one function (`_at_exit`): first every exit hook
(the managers close their connections on that loop, flushing what was written), then the loop stops,
all within `EXIT_TIMEOUT` even when an application's callback blocks the thread. A forked child gets a
fresh portal and the same exit behaviour, because `_at_exit` looks the portal up when it runs.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator, Sequence
from typing import Any, Final, Generic, TypeVar

from ._deadlines import DeadlineQueue
from .errors import LoopGone

__all__ = [
    "EXIT_TIMEOUT",
    "Home",
    "LoopThread",
    "Signal",
    "Wait",
    "home_for_caller",
    "on_exit",
    "on_fork_in_child",
    "portal",
    "running_loop",
    "wait_until",
]

T = TypeVar("T")
logger: Final = logging.getLogger("connman")

#: Set to "0" to keep the background thread on asyncio's default loop even when uvloop is installed.
UVLOOP_ENV: Final = "CONNMAN_UVLOOP"

#: Seconds the exit hook gives connections on connman's loop thread to flush and close, and the loop
#: to stop, together. A callback blocking the thread cannot hold the exit longer than this.
EXIT_TIMEOUT: Final = 5.0

_PENDING: Final[Any] = object()
_clock: Final = time.monotonic


class Wait(Generic[T]):
    """The result of a call that may wait: `await` it in async code; in sync code it is already done.

    In sync code the call blocked until the outcome was known: `result()` returns it and `bool()` is its
    truth (`if conn.wait_connected(5): ...`). In async code nothing has happened yet but the call's
    side effects: `await` it to wait for the outcome.
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

    def abandon(self) -> None:
        """Say that nobody will await this wait: its outcome goes unread and unlogged.

        A failure included. connman does so with a `Wait` that a heartbeat's `send` returns."""

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


# ---- where a call runs -----------------------------------------------------------------------------


#: A Home keeps this many deadline queues, empty ones included, before it drops the empty ones.
_KEPT_QUEUES: Final = 16


class Home:
    """The event loop an object lives on and the thread that runs it. Shared by every connection
    made on that loop in that thread."""

    __slots__ = ("__weakref__", "_deadlines", "loop", "owned", "thread_id")

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int, owned: bool = False) -> None:
        self.loop = loop
        self.thread_id = thread_id
        #: Whether the loop is connman's own loop thread's (the sync API's), not the application's.
        self.owned = owned
        self._deadlines: dict[float, DeadlineQueue] = {}

    def deadlines(self, timeout: float) -> DeadlineQueue:
        """The queue of this loop's attempts bounded by `timeout` seconds (made on first use)."""
        queues = self._deadlines
        queue = queues.get(timeout)
        if queue is None:
            if len(queues) >= _KEPT_QUEUES:  # timeouts computed per connection: keep the live ones
                self._deadlines = queues = {key: kept for key, kept in queues.items() if kept}
            queue = queues[timeout] = DeadlineQueue(self.loop, timeout)
        return queue

    def here(self) -> bool:
        """Whether the caller runs on this loop's thread."""
        return threading.get_ident() == self.thread_id

    def alive(self) -> bool:
        """Whether the loop can still run callbacks: it is not closed (it may be between runs)."""
        return not self.loop.is_closed()

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Run `fn(*args)` on this loop: now when called on its thread, else at its next turn.

        Raises:
            LoopGone: The loop is closed; nothing will ever run there again.
        """
        loop = self.loop
        if loop.is_closed():
            raise LoopGone(f"the event loop {loop!r} is closed")
        if threading.get_ident() == self.thread_id:
            fn(*args)  # on the loop's thread, running or between runs: nobody else runs it
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # closed in between
            raise LoopGone(f"the event loop {loop!r} is closed") from None


#: The Home of each loop, held weakly both ways: a Home holds its loop, and a strong value would keep
#: every loop that ever made a connection alive (with its 256 KiB receive buffer).
_homes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[Home]] = weakref.WeakKeyDictionary()


def home_for_caller() -> Home:
    """Where a connection made now lives: the caller's running loop, or connman's loop thread."""
    loop = running_loop()
    if loop is None:
        return portal().home()
    known = _homes.get(loop)
    home = None if known is None else known()
    thread_id = threading.get_ident()
    if home is None or home.thread_id != thread_id:
        home = Home(loop, thread_id)
        _homes[loop] = weakref.ref(home)
    return home


# ---- how a caller waits ----------------------------------------------------------------------------

#: Guards every `Signal`'s list of wakers: the critical sections are a few bytecodes long, and a lock
#: per connection costs memory in a 10,000-connection pool.
_WAKERS_LOCK = threading.Lock()


class Signal:
    """A change notification that any thread or loop can wait on (see `wait_until`).

    `fire()` is called by the owner (on its loop) after each change; it calls every waker registered,
    and each waker wakes its waiter in the waiter's own thread or loop.
    """

    __slots__ = ("_wakers",)

    def __init__(self) -> None:
        self._wakers: list[Callable[[], None]] | None = None  # made on first use

    def fire(self) -> None:
        """Wake every waiter; cheap when nobody waits."""
        wakers = self._wakers
        if wakers:
            for wake in tuple(wakers):
                wake()

    def add(self, wake: Callable[[], None]) -> None:
        """Call `wake()` at every `fire()` until `discard(wake)`."""
        with _WAKERS_LOCK:
            if self._wakers is None:
                self._wakers = []
            self._wakers.append(wake)

    def discard(self, wake: Callable[[], None]) -> None:
        """Stop calling `wake` (no error if it was not registered)."""
        with _WAKERS_LOCK:
            wakers = self._wakers
            if wakers is not None:
                try:
                    wakers.remove(wake)
                except ValueError:
                    pass
                if not wakers:
                    self._wakers = None


def wait_until(
    signals: Sequence[Signal],
    predicate: Callable[[], T | None],
    timeout: float | None,
    default: T,
    homes: Iterable[Home] = (),
    poll: float | None = None,
) -> Wait[T]:
    """Wait until `predicate()` returns something other than None, re-checked at every signal.

    Returns a `Wait` holding that outcome, or `default` once `timeout` seconds passed (None: no limit).
    Sync callers block now; async callers get a pending `Wait` to await, on any loop. So does a sync
    caller on the thread of one of `homes` (the loops whose progress the wait needs): that loop is
    between runs (`loop.run_until_complete(conn.disconnect())`), and blocking it would wait forever.
    `poll` (seconds) re-checks the predicate that often too, for conditions no signal reports (a
    transport's buffer running empty).
    """
    if running_loop() is None and not any(home.here() and home.alive() for home in homes):
        return Wait(value=_block_until(signals, predicate, timeout, default, poll))
    return Wait(factory=lambda: _await_until(signals, predicate, timeout, default, poll))


def _block_until(
    signals: Sequence[Signal],
    predicate: Callable[[], T | None],
    timeout: float | None,
    default: T,
    poll: float | None,
) -> T:
    outcome = predicate()
    if outcome is not None:
        return outcome
    event = threading.Event()
    deadline = None if timeout is None else _clock() + timeout
    with _woken_by(signals, event.set):
        while True:
            event.clear()
            outcome = predicate()  # after clear(): a change from now on sets the event again
            if outcome is not None:
                return outcome
            if deadline is None:
                event.wait(poll)
            else:
                remaining = deadline - _clock()
                if remaining <= 0:
                    return default
                event.wait(remaining if poll is None else min(poll, remaining))


async def _await_until(
    signals: Sequence[Signal],
    predicate: Callable[[], T | None],
    timeout: float | None,
    default: T,
    poll: float | None,
) -> T:
    outcome = predicate()
    if outcome is not None:
        return outcome
    loop = asyncio.get_running_loop()
    thread_id = threading.get_ident()
    event = asyncio.Event()

    def wake() -> None:
        if threading.get_ident() == thread_id:
            event.set()
        else:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the waiter's loop has closed: nobody is waiting any more
                pass

    try:
        with _woken_by(signals, wake):
            async with asyncio.timeout(timeout) as scope:
                while True:
                    event.clear()
                    outcome = predicate()
                    if outcome is not None:
                        return outcome
                    if poll is None:
                        await event.wait()
                    else:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(poll):
                                await event.wait()
    except TimeoutError:
        if scope.expired():
            return default
        raise


@contextlib.contextmanager
def _woken_by(signals: Sequence[Signal], wake: Callable[[], None]) -> Iterator[None]:
    # `wake()` at every fire of any of `signals`, for as long as the block runs.
    for signal in signals:
        signal.add(wake)
    try:
        yield
    finally:
        for signal in signals:
            signal.discard(wake)


# ---- connman's own loop thread -----------------------------------------------------------------------


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
        self._home: Home | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def home(self) -> Home:
        """The loop and its thread, starting the thread on first use (and again after `stop()`)."""
        home = self._home
        if home is not None and self.running:
            return home
        with self._lock:
            if self._home is None or not self.running:
                self._start()
            assert self._home is not None
            return self._home

    def _start(self) -> None:
        ready = threading.Event()
        loop = _new_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)  # set once the loop runs: submit() may then hand it work
            try:
                loop.run_forever()
            finally:
                _close_loop(loop)

        thread = threading.Thread(target=run, name="connman-loop", daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        assert thread.ident is not None
        self._home = Home(loop, thread.ident, owned=True)
        logger.debug("= started the background loop thread (%s)", type(loop).__module__)

    def stop(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """Stop the loop, cancel what is left on it and join the thread, for at most `timeout` s.

        Returns:
            True if the thread ended in time; False if it is still busy (a callback blocking it).
        """
        with self._lock:
            home, thread = self._home, self._thread
            self._home = self._thread = None
        if home is None or thread is None:
            return True
        if threading.get_ident() == thread.ident:
            raise RuntimeError("the loop thread cannot stop itself; call stop() from another thread")
        try:
            home.loop.call_soon_threadsafe(home.loop.stop)
        except RuntimeError:  # already closed
            pass
        thread.join(timeout)
        return not thread.is_alive()


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
_exit_hooks: list[Callable[[Home, float], None]] = []


def portal() -> LoopThread:
    """The process's background loop thread."""
    return _portal


def on_exit(hook: Callable[[Home, float], None]) -> None:
    """Call `hook(home, deadline)` at interpreter exit, before connman's loop thread stops.

    `deadline` is a `time.monotonic()` time: the hook must return by then (it closes connections).
    """
    _exit_hooks.append(hook)


def _at_exit() -> None:
    # The whole exit, in order: close what is open on connman's loop (flushing it), then stop the loop.
    thread = _portal
    if not thread.running:
        return
    home = thread.home()
    deadline = _clock() + EXIT_TIMEOUT
    for hook in _exit_hooks:
        try:
            hook(home, deadline)
        except Exception:
            logger.error("closing connections at exit failed", exc_info=True)
    if not thread.stop(max(0.0, deadline - _clock())):
        logger.warning(
            "connman's loop thread is still busy in a callback after %.0f s at exit; leaving it", EXIT_TIMEOUT
        )


atexit.register(_at_exit)


_fork_hooks: list[Callable[[], None]] = []


def on_fork_in_child(hook: Callable[[], None]) -> None:
    """Call `hook()` in a forked child, after the portal is reset (modules renew their locks there)."""
    _fork_hooks.append(hook)


def _after_fork_in_child() -> None:
    # The child of a fork has no loop thread, only a copy of its state, and the locks may have been
    # held by threads that do not exist here: start afresh. `_at_exit` finds the new portal.
    global _portal, _WAKERS_LOCK
    _portal = LoopThread()
    _WAKERS_LOCK = threading.Lock()
    _homes.clear()
    for hook in _fork_hooks:
        hook()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
