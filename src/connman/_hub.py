"""The event hub of one manager: who listens, and delivery that never blocks or breaks connman.

A connection reports to its manager's hub (`Connection(..., hub=)`), and so do pools. The registry is
the first subscriber in effect: `closed()` tells it that a connection is gone, whether or not anybody
else listens. Other events are built only while `listening` is true, so a manager nobody subscribed to
pays one attribute test per state change.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ._callbacks import SLOW_CALLBACK
from .events import Closed, Event, Listener

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Hub"]

logger: Final = logging.getLogger("connman")

_clock: Final = time.perf_counter


class Hub:
    """Listeners of one manager's events, and the registry's own notice of closed connections."""

    __slots__ = ("_listeners", "_lock", "_on_closed")

    def __init__(self, on_closed: Callable[[Connection], None]) -> None:
        self._on_closed = on_closed
        self._lock = threading.Lock()
        #: Copied on write, so that delivery (from any thread) reads it without the lock.
        self._listeners: tuple[Listener, ...] = ()

    @property
    def listening(self) -> bool:
        """Whether anybody subscribed: events are built only then."""
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add `listener`; return the function that removes it (idempotent)."""
        if not callable(listener):
            raise TypeError(f"listener must be callable, not {listener!r}")
        if inspect.iscoroutinefunction(listener):
            raise TypeError(
                f"listener must be a plain function, not the coroutine function {listener.__qualname__}:"
                " events are delivered at once, in the thread where they happen; hand them to your"
                " loop with loop.call_soon_threadsafe() if you need to await"
            )
        with self._lock:
            self._listeners = (*self._listeners, listener)
        subscribed = True

        def unsubscribe() -> None:
            nonlocal subscribed
            with self._lock:
                if subscribed:
                    subscribed = False
                    listeners = list(self._listeners)
                    listeners.remove(listener)
                    self._listeners = tuple(listeners)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver `event` to every listener, each isolated from the others and from connman."""
        for listener in self._listeners:
            started = _clock()
            try:
                result = listener(event)
                if result is not None and inspect.iscoroutine(result):
                    result.close()
                    raise TypeError("an event listener must not return a coroutine: it is never awaited")
            except (Exception, SystemExit, KeyboardInterrupt) as exc:  # as for callbacks: decision 24
                logger.error(
                    "event listener %s failed on %s; the other listeners and connman carry on",
                    _name(listener),
                    type(event).__name__,
                    exc_info=exc,
                )
            finally:
                if SLOW_CALLBACK > 0 and (elapsed := _clock() - started) > SLOW_CALLBACK:
                    logger.warning(
                        "event listener %s took %.3f s over %s; it blocked the thread the event happened"
                        " in (for connections, their event loop): hand slow work to a queue",
                        _name(listener),
                        elapsed,
                        type(event).__name__,
                    )

    def after_fork_in_child(self) -> None:
        """A fresh lock: a thread of the parent may have held this one at the fork."""
        self._lock = threading.Lock()

    def closed(self, conn: Connection, event: Closed | None) -> None:
        """`conn` was disconnected: tell the listeners (`event`, built if they listen), then the registry."""
        if event is not None:
            self.publish(event)
        self._on_closed(conn)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
