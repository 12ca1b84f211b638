"""Connect deadlines share one timer per timeout value (`_deadlines.DeadlineQueue`), on a real loop.

The promises: each attempt expires once, `connect_timeout` after it started, unless it ended first;
an attempt that ended never expires, wherever it is in the queue; no timer outlives the attempts.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import connman
from connman._deadlines import DeadlineQueue
from connman._portal import Home
from connman.testing import EchoServer, SynBlackhole
from tests.conftest import BOUND, MS, SLOW, assert_nothing_pending, until_conn

TIMEOUT = 40 * MS


class Attempt:
    """An `Expiring` that records when it expired (loop time)."""

    def __init__(self, name: str, log: list[str], expired: asyncio.Event | None = None) -> None:
        self.name = name
        self.log = log
        self.expired = expired
        self.deadline: DeadlineQueue | None = None
        self.expired_at: float | None = None

    def expire(self) -> None:
        assert self.deadline is None  # cleared before the call
        self.expired_at = asyncio.get_running_loop().time()
        self.log.append(self.name)
        if self.expired is not None:
            self.expired.set()


def queue_timers(loop: asyncio.AbstractEventLoop) -> int:
    """The live timers of deadline queues on `loop` (asyncio's loop: its `_scheduled` heap)."""
    scheduled: list[Any] = loop._scheduled  # type: ignore[attr-defined]
    live = [handle for handle in scheduled if not handle.cancelled()]
    return len(
        [handle for handle in live if getattr(handle._callback, "__module__", "") == "connman._deadlines"]
    )


async def test_each_attempt_expires_once_in_order_and_an_ended_one_never() -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop, TIMEOUT)
    log: list[str] = []
    last = asyncio.Event()
    first, second, third = Attempt("first", log), Attempt("second", log), Attempt("third", log, last)
    started = loop.time()
    queue.add(first)
    queue.add(second)
    await asyncio.sleep(TIMEOUT / 2)
    queue.add(third)
    third_started = loop.time()
    queue.ended(second)  # behind `first`, still pending: it stays queued, and must not expire
    assert second.deadline is None
    assert queue_timers(loop) == 1  # one timer for the three
    async with asyncio.timeout(BOUND):
        await last.wait()
    assert log == ["first", "third"]
    assert first.expired_at is not None and third.expired_at is not None
    assert first.expired_at >= started + TIMEOUT - 0.001  # _SLACK: uvloop counts milliseconds
    assert third.expired_at >= third_started + TIMEOUT - 0.001
    assert queue_timers(loop) == 0  # the queue is empty: no timer left


async def test_attempts_that_end_leave_no_timer_behind() -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop, TIMEOUT)
    log: list[str] = []
    attempts = [Attempt(str(n), log) for n in range(100)]
    for attempt in attempts:
        queue.add(attempt)
    assert queue_timers(loop) == 1
    for attempt in attempts:  # in order, as connects finish: each leaves from the front
        queue.ended(attempt)
        assert len(queue) == 99 - int(attempt.name)  # dropped at once: nothing held behind
    assert queue_timers(loop) == 0
    await asyncio.sleep(TIMEOUT * 2)
    assert log == []


async def test_connections_sharing_a_timeout_time_out_alone(cm: connman.ConnectionManager) -> None:
    # One timeout value, one queue: attempts that connect leave it at once, the blackholed ones
    # time out on their own deadlines, and once all are disconnected no connman timer is left.
    async with EchoServer() as server:
        with SynBlackhole() as hole:
            reachable = [
                cm.connect(server.port, "127.0.0.1", connect_timeout=TIMEOUT, backoff=SLOW) for _ in range(3)
            ]
            stalled = [
                cm.connect(hole.port, "127.0.0.1", connect_timeout=TIMEOUT, backoff=SLOW) for _ in range(3)
            ]
            async with asyncio.timeout(BOUND):  # one bound for them all
                for conn in reachable:
                    await until_conn(conn, lambda: conn.is_connected)  # noqa: B023 (awaited at once)
                for conn in stalled:
                    await until_conn(conn, lambda: conn.stats.failed_attempts == 1)  # noqa: B023
            for conn in stalled:
                assert isinstance(conn.last_error, connman.ConnectTimeout), repr(conn.last_error)
            await asyncio.sleep(TIMEOUT * 2)  # a deadline of the connected ones would have fired
            assert all(conn.is_connected and conn.stats.failed_attempts == 0 for conn in reachable)
            for conn in reachable + stalled:
                await conn.disconnect()
    assert_nothing_pending()


async def test_a_home_keeps_few_empty_queues() -> None:
    # An application that computes a timeout per connection must not grow a queue per value.
    home = Home(asyncio.get_running_loop(), threading.get_ident())
    log: list[str] = []
    live = Attempt("live", log)
    home.deadlines(100.0).add(live)
    for n in range(50):
        queue = home.deadlines(1.0 + n)
        attempt = Attempt(str(n), log)
        queue.add(attempt)
        queue.ended(attempt)
    assert len(home._deadlines) <= 17  # the live one and at most 16 more
    assert 100.0 in home._deadlines
    assert home.deadlines(100.0) is home.deadlines(100.0)
    home.deadlines(100.0).ended(live)
    assert queue_timers(asyncio.get_running_loop()) == 0
