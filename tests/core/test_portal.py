"""The one way to wait (`_portal.wait_until`), without sockets: threads and loops of our own, every wait
bounded, from sync code and from async code."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable

import pytest

from connman._portal import Home, Signal, Wait, wait_until
from tests.conftest import BOUND, MS

clock = time.monotonic

#: A wait's timeout in these tests: short, so that a wait that times out costs little.
SHORT = 200 * MS
#: How late a woken wait may return; reaching it means a wake-up was missed.
PROMPT = 500 * MS


class Box:
    """A value that some thread changes, and the signal it fires after each change."""

    def __init__(self) -> None:
        self.value = 0
        self.signal = Signal()

    def set(self, value: int) -> None:
        self.value = value
        self.signal.fire()

    def reached(self, value: int) -> Callable[[], str | None]:
        """A predicate: "seen" once the value is `value`, None before."""
        return lambda: "seen" if self.value == value else None


def later(seconds: float, fn: Callable[[], object]) -> threading.Thread:
    """Run `fn()` in another thread after `seconds`."""
    thread = threading.Timer(seconds, fn)
    thread.start()
    return thread


# ---- sync callers -----------------------------------------------------------------------------


def test_a_sync_wait_returns_the_default_at_its_timeout_when_nothing_fires() -> None:
    box = Box()
    start = clock()
    wait = wait_until([box.signal], box.reached(1), SHORT, "timed out")
    elapsed = clock() - start
    assert wait.done()
    assert wait.result() == "timed out"
    assert SHORT <= elapsed < SHORT + PROMPT
    assert repr(wait) == "<Wait done: 'timed out'>"
    assert not wait_until([box.signal], lambda: None, 0, False)  # bool() is the outcome's truth


def test_a_sync_wait_returns_the_predicates_value_as_soon_as_another_thread_fires() -> None:
    box = Box()
    start = clock()
    thread = later(50 * MS, lambda: box.set(1))
    try:
        outcome = wait_until([box.signal], box.reached(1), BOUND, "timed out").result()
    finally:
        thread.join(BOUND)
    assert outcome == "seen"
    assert clock() - start < 50 * MS + PROMPT


def test_a_predicate_already_true_returns_at_once() -> None:
    box = Box()
    box.set(1)
    start = clock()
    assert wait_until([box.signal], box.reached(1), BOUND, "timed out").result() == "seen"
    assert clock() - start < PROMPT


def test_a_fire_between_the_check_and_the_wait_is_never_lost() -> None:
    # Each of 3,000 rounds, both threads leave a barrier together: the flip lands before, during or
    # after the waiter's predicate check. A lost fire would leave the waiter blocked until its timeout.
    # (Tried against a waiter that clears its event after the check: it fails 8 runs out of 8.)
    rounds = 3000
    box = Box()
    barrier = threading.Barrier(2)

    def reached(value: int) -> Callable[[], str | None]:
        # Reads the value, then works a little: a fire landing during that work must not be lost.
        def predicate() -> str | None:
            seen = box.value
            for _ in range(value % 32):
                pass
            return "seen" if seen == value else None

        return predicate

    def flip() -> None:
        try:
            for value in range(1, rounds + 1):
                barrier.wait(BOUND)
                for _ in range(value % 500):  # shift the flip across the waiter's check
                    pass
                box.set(value)
        except threading.BrokenBarrierError:
            pass  # the waiter failed and gave up

    thread = threading.Thread(target=flip)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: into the narrowest windows
    thread.start()
    worst = 0.0
    try:
        for value in range(1, rounds + 1):
            barrier.wait(BOUND)
            start = clock()
            outcome = wait_until([box.signal], reached(value), PROMPT, "lost").result()
            worst = max(worst, clock() - start)
            assert outcome == "seen", f"round {value}: the fire was lost"
    finally:
        sys.setswitchinterval(switch_interval)
        barrier.abort()
        thread.join(BOUND)
    assert worst < PROMPT


def test_a_sync_wait_keeps_its_timeout_while_the_firing_thread_is_blocked() -> None:
    box = Box()
    stuck = threading.Event()

    def owner() -> None:
        stuck.wait(2.0)  # an application's callback blocking the owner for 2 s
        box.set(1)

    thread = threading.Thread(target=owner)
    thread.start()
    try:
        start = clock()
        outcome = wait_until([box.signal], box.reached(1), SHORT, "timed out").result()
        elapsed = clock() - start
    finally:
        stuck.set()  # release it early: the test need not last 2 s
        thread.join(BOUND)
    assert outcome == "timed out"
    assert elapsed < 1.0


# ---- async callers -----------------------------------------------------------------------------


def test_an_async_wait_is_pending_until_awaited_and_sees_a_fire_from_another_thread() -> None:
    box = Box()

    async def main() -> tuple[Wait[str], str]:
        wait = wait_until([box.signal], box.reached(1), BOUND, "timed out")
        assert not wait.done()
        assert repr(wait) == "<Wait pending: await it>"
        with pytest.raises(RuntimeError, match="use `await` on it"):
            wait.result()
        thread = later(50 * MS, lambda: box.set(1))
        try:
            return wait, await wait
        finally:
            await asyncio.to_thread(thread.join, BOUND)

    start = clock()
    wait, outcome = asyncio.run(main())
    assert outcome == "seen"
    assert clock() - start < 50 * MS + PROMPT
    assert not wait.done()  # awaiting it does not turn it into a done Wait


def test_an_async_wait_sees_a_fire_on_its_own_loop() -> None:
    box = Box()

    async def main() -> str:
        asyncio.get_running_loop().call_later(20 * MS, box.set, 1)
        return await wait_until([box.signal], box.reached(1), BOUND, "timed out")

    assert asyncio.run(main()) == "seen"


def test_an_async_wait_returns_the_default_at_its_timeout() -> None:
    box = Box()

    async def main() -> str:
        return await wait_until([box.signal], box.reached(1), SHORT, "timed out")

    start = clock()
    assert asyncio.run(main()) == "timed out"
    assert SHORT <= clock() - start < SHORT + PROMPT


def test_an_async_wait_keeps_its_timeout_while_the_owners_loop_is_blocked() -> None:
    # The owner is an event loop in another thread, stuck for 2 s in an application's callback; the
    # waiter is on a loop of its own and keeps time by that loop's clock.
    box = Box()
    stuck = threading.Event()
    owner = asyncio.new_event_loop()
    thread = threading.Thread(target=owner.run_forever)
    thread.start()

    def callback() -> None:
        stuck.wait(2.0)
        box.set(1)

    async def main() -> str:
        owner.call_soon_threadsafe(callback)
        return await wait_until([box.signal], box.reached(1), SHORT, "timed out")

    try:
        start = clock()
        outcome = asyncio.run(main())
        elapsed = clock() - start
    finally:
        stuck.set()
        owner.call_soon_threadsafe(owner.stop)
        thread.join(BOUND)
        owner.close()
    assert outcome == "timed out"
    assert elapsed < 1.0


def test_a_sync_caller_on_a_homes_thread_gets_a_pending_wait_instead_of_blocking() -> None:
    # `loop.run_until_complete(conn.disconnect())` from plain code: the loop is between runs, and
    # blocking its thread would wait for progress only that loop can make.
    loop = asyncio.new_event_loop()
    try:
        home = Home(loop, threading.get_ident())
        box = Box()
        start = clock()
        wait = wait_until([box.signal], box.reached(1), BOUND, "timed out", homes=(home,))
        assert clock() - start < PROMPT  # did not block
        assert not wait.done()
        loop.call_later(20 * MS, box.set, 1)  # progress made by the loop, once it runs

        async def outcome() -> str:
            return await wait

        assert loop.run_until_complete(outcome()) == "seen"
    finally:
        loop.close()


def test_a_home_on_another_thread_does_not_stop_a_sync_caller_from_blocking() -> None:
    other = threading.Thread(target=lambda: None)
    other.start()
    other.join(BOUND)
    assert other.ident is not None
    loop = asyncio.new_event_loop()
    try:
        box = Box()
        wait = wait_until([box.signal], box.reached(1), SHORT, "timed out", homes=(Home(loop, other.ident),))
        assert wait.done()
        assert wait.result() == "timed out"
    finally:
        loop.close()


# ---- Signal -----------------------------------------------------------------------------------


def test_discarding_an_unknown_waker_is_harmless() -> None:
    signal = Signal()
    calls: list[str] = []

    def waker() -> None:
        calls.append("woken")

    signal.discard(waker)  # nobody ever registered
    signal.fire()  # nobody to wake
    signal.add(waker)
    signal.discard(lambda: None)  # another waker is registered: it stays
    signal.fire()
    assert calls == ["woken"]
    signal.discard(waker)
    signal.discard(waker)  # twice
    signal.fire()
    assert calls == ["woken"]
    signal.add(waker)  # usable again after its last waker left
    signal.fire()
    assert calls == ["woken", "woken"]
