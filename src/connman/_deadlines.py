"""Connect deadlines: one timer per `connect_timeout` value on a loop, not one per attempt.

Attempts with the same timeout come due in the order they started, so a first-in-first-out queue
per timeout keeps them in order and one timer, armed for the oldest, serves them all. An attempt that
ends (nearly all do, long before their deadline) is dropped from the front at once when it is there,
as it usually is; behind a slower attempt it waits for that one to end or expire.

A timer handle per attempt costs about 250 bytes and a dozen calls; W4 starts 10,000 attempts at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

__all__ = ["DeadlineQueue", "Expiring"]

#: Entries due within this many seconds of a firing expire with it: uvloop's clock counts
#: milliseconds, and a timer may fire just before the time it was set for.
_SLACK = 0.001


class Expiring(Protocol):
    """What a queue expires: an attempt, by its protocol."""

    #: The queue it waits in until it ends (then None), or expires.
    deadline: DeadlineQueue | None

    def expire(self) -> None:
        """The deadline passed (called once, with `deadline` already None)."""


class DeadlineQueue:
    """The pending attempts of one loop with one timeout, oldest first."""

    __slots__ = ("_entries", "_loop", "_timeout", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._entries: deque[tuple[float, Expiring]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Attempts queued (ended ones behind a pending one included)."""
        return len(self._entries)

    def add(self, attempt: Expiring) -> None:
        """Expire `attempt` `timeout` seconds from now, unless it ends first (see `ended`)."""
        due = self._loop.time() + self._timeout
        attempt.deadline = self
        self._entries.append((due, attempt))
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._fire)

    def ended(self, attempt: Expiring) -> None:
        """`attempt` ended before its deadline: it will not expire."""
        attempt.deadline = None
        entries = self._entries
        while entries and entries[0][1].deadline is None:
            entries.popleft()
        if not entries and self._timer is not None:
            self._timer.cancel()  # nothing left to expire: no timer outlives the attempts
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        entries = self._entries
        now = self._loop.time() + _SLACK
        while entries:
            due, attempt = entries[0]
            if attempt.deadline is not None and due > now:
                self._timer = self._loop.call_at(due, self._fire)
                return
            entries.popleft()
            if attempt.deadline is not None:
                attempt.deadline = None
                attempt.expire()
