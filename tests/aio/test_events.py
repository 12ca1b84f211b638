"""`ConnectionManager.subscribe()`: the exact event sequence of a connection's life against a real
server, pools' membership events, and listeners that raise, block or unsubscribe."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TypeVar

import pytest

import connman
from connman import Cause, events
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, Recorder, assert_nothing_pending

E = TypeVar("E", bound=events.Event)


class Journal:
    """A listener that keeps every event, and lets the test wait for one of a kind."""

    def __init__(self, recorder: Recorder) -> None:
        self.events: list[events.Event] = []
        self.recorder = recorder

    def __call__(self, event: events.Event) -> None:
        self.events.append(event)
        self.recorder.add(type(event).__name__, event)

    def names(self) -> list[str]:
        return [type(event).__name__ for event in self.events]

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]


async def test_the_exact_sequence_of_connect_kill_refused_back_and_disconnect(
    cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: events.Event) -> None:
        raise RuntimeError("a listener that always raises")

    recorder = Recorder()
    journal = Journal(recorder)
    cm.subscribe(broken)  # first in line: it must change nothing for the next one
    cm.subscribe(journal)
    server = EchoServer()
    await server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="connman"):
            conn = cm.connect(server.port, "127.0.0.1", backoff=FAST)
            await recorder.wait("Connected")
            await server.stop()  # the server goes away: FIN, then its port refuses
            await recorder.wait("AttemptFailed", 3)
            await server.start()
            await recorder.wait("Connected", 2)
            await conn.disconnect()
    finally:
        await server.stop()
    names = journal.names()
    refused = names.count("AttemptFailed")
    assert refused >= 3
    expected = [
        "AttemptStarted",
        "Connected",
        "Lost",
        "RetryScheduled",
        *["AttemptStarted", "AttemptFailed", "RetryScheduled"] * refused,
        "AttemptStarted",
        "Connected",
        "Closed",
    ]
    assert names == expected
    assert all(event.conn is conn and event.endpoint == conn.endpoint for event in journal.events)
    started = journal.of(events.AttemptStarted)
    assert [e.attempt for e in started] == [1, *range(1, refused + 2)]
    failed = journal.of(events.AttemptFailed)
    assert [(e.cause, e.attempt) for e in failed] == [(Cause.REFUSED, n) for n in range(1, refused + 1)]
    (lost,) = journal.of(events.Lost)
    assert isinstance(lost, events.Lost) and lost.cause is Cause.EOF and lost.error is None
    assert lost.uptime > 0
    assert all(e.latency > 0 for e in journal.of(events.Connected))
    retries = journal.of(events.RetryScheduled)
    assert [e.cause for e in retries] == [Cause.EOF] + [Cause.REFUSED] * refused
    assert all(e.delay > 0 for e in retries)
    ats = [event.at for event in journal.events]
    assert ats == sorted(ats)
    assert caplog.text.count("event listener test_the_exact_sequence") >= len(expected) - 1
    assert "broken failed on Closed" in caplog.text


async def test_giving_up_is_one_failed_event_after_the_last_attempt(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    recorder = Recorder()
    journal = Journal(recorder)
    cm.subscribe(journal)
    conn = cm.connect(down_server.port, "127.0.0.1", backoff=FAST, max_attempts=2)
    await recorder.wait("Failed")
    assert journal.names() == [
        "AttemptStarted",
        "AttemptFailed",
        "RetryScheduled",
        "AttemptStarted",
        "AttemptFailed",
        "Failed",
    ]
    (failed,) = journal.of(events.Failed)
    assert isinstance(failed, events.Failed)
    assert (failed.reason, failed.attempts, failed.error) == ("max_attempts", 2, conn.last_error)
    conn.disconnect()


async def test_reconnect_is_a_loss_with_cause_reconnect_and_no_wait(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    recorder = Recorder()
    journal = Journal(recorder)
    cm.subscribe(journal)
    conn = cm.connect(server.port, "127.0.0.1")
    await recorder.wait("Connected")
    conn.reconnect()
    await recorder.wait("Connected", 2)
    assert journal.names() == ["AttemptStarted", "Connected", "Lost", "AttemptStarted", "Connected"]
    lost = journal.of(events.Lost)[0]
    assert isinstance(lost, events.Lost) and lost.cause is Cause.RECONNECT


async def test_pool_membership_events_and_their_order_at_disconnect(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    recorder = Recorder()
    journal = Journal(recorder)
    cm.subscribe(journal)
    pool = cm.create_pool("cache")
    conn = pool.add_connection(server.port, "127.0.0.1")
    await recorder.wait("Connected")
    await conn.disconnect()
    # On the loop's own thread the first attempt starts inside add_connection(), before it joins.
    assert journal.names() == ["AttemptStarted", "MemberAdded", "Connected", "Closed", "MemberRemoved"]
    added, removed = journal.of(events.MemberAdded)[0], journal.of(events.MemberRemoved)[0]
    assert isinstance(added, events.MemberAdded) and added.pool == "cache" and added.conn is conn
    assert isinstance(removed, events.MemberRemoved) and removed.pool == "cache"


async def test_unsubscribe_stops_delivery_and_is_idempotent(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    recorder = Recorder()
    journal, other = Journal(recorder), Journal(Recorder())
    unsubscribe = cm.subscribe(journal)
    cm.subscribe(other)
    conn = cm.connect(server.port, "127.0.0.1")
    await recorder.wait("Connected")
    unsubscribe()
    unsubscribe()
    await conn.disconnect()
    assert journal.names() == ["AttemptStarted", "Connected"]
    assert other.names() == ["AttemptStarted", "Connected", "Closed"]


async def test_a_slow_listener_is_named(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()

    def slow_listener(event: events.Event) -> None:
        if isinstance(event, events.Connected):
            time.sleep(0.15)  # past the 0.1 s threshold, on purpose: this is what the warning names
            recorder.add("slow")

    cm.subscribe(slow_listener)
    with caplog.at_level(logging.WARNING, logger="connman"):
        cm.connect(server.port, "127.0.0.1")
        await recorder.wait("slow")
    assert "event listener test_a_slow_listener_is_named.<locals>.slow_listener took" in caplog.text


def test_subscribe_refuses_what_it_cannot_call() -> None:
    manager = connman.ConnectionManager()

    async def coroutine_listener(event: events.Event) -> None: ...

    with pytest.raises(TypeError, match="listener must be callable, not 42"):
        manager.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="listener must be a plain function, not the coroutine function"):
        manager.subscribe(coroutine_listener)


def test_events_are_immutable() -> None:
    event = events.RetryScheduled(
        conn=None,  # type: ignore[arg-type]
        endpoint=connman.Endpoint(1, "h"),
        at=0.0,
        delay=1.0,
        cause=None,
    )
    with pytest.raises(AttributeError):
        event.delay = 2.0  # type: ignore[misc]


async def test_events_reach_a_listener_of_a_sync_program_on_the_loop_thread(
    server: EchoServer,
) -> None:
    # A plain thread (no loop): the connection lives on connman's loop thread, and so do its events.
    seen: list[tuple[str, str]] = []

    def run() -> None:
        with connman.ConnectionManager() as manager:
            manager.subscribe(
                lambda event: seen.append((type(event).__name__, threading.current_thread().name))
            )
            conn = manager.connect(server.port, "127.0.0.1")
            assert conn.wait_connected(BOUND)

    await asyncio.to_thread(run)
    assert [name for name, _ in seen] == ["AttemptStarted", "Connected", "Closed"]
    assert {thread for _, thread in seen} == {"connman-loop"}


def _call_back_into_the_manager_on_the_first_attempt(
    cm: connman.ConnectionManager, port: int
) -> tuple[connman.Connection, list[int]]:
    # On the loop's thread the first attempt starts inside connect(), which held the manager's lock:
    # a listener that called back into the manager (here: connections, then disconnect()) deadlocked
    # the loop for good.
    seen: list[int] = []

    def listener(event: events.Event) -> None:
        if isinstance(event, events.AttemptStarted):
            seen.append(len(cm.connections))
            event.conn.disconnect()

    unsubscribe = cm.subscribe(listener)
    try:
        conn = cm.connect(port, "127.0.0.1")
    finally:
        unsubscribe()
    return conn, seen


async def test_a_listener_may_call_the_manager_and_disconnect_on_the_first_attempt() -> None:
    cm = connman.ConnectionManager()  # not the fixture's: a deadlock must not hang its teardown
    async with EchoServer() as server:
        done: list[tuple[connman.Connection, list[int]]] = []
        # In a thread of its own, so that a deadlock fails the test instead of hanging the suite.
        loop_thread = threading.Thread(
            target=lambda: done.append(asyncio.run(_on_a_loop(cm, server.port))), daemon=True
        )
        loop_thread.start()
        loop_thread.join(BOUND)
        assert done, "deadlocked in connect()"
        conn, seen = done[0]
        assert seen == [0]  # not registered yet while its first attempt starts
        assert conn.state is connman.State.CLOSED
        assert conn not in cm.connections  # disconnected before it was registered: never is


async def _on_a_loop(cm: connman.ConnectionManager, port: int) -> tuple[connman.Connection, list[int]]:
    conn, seen = _call_back_into_the_manager_on_the_first_attempt(cm, port)
    assert await conn.wait_closed(BOUND)
    return conn, seen


async def test_a_listener_that_disconnects_on_retry_scheduled_leaves_no_retry_timer() -> None:
    # The listener's disconnect() ran inside the report of ScheduleRetry, and the action ran after it
    # anyway: a retry timer armed on a closed connection, holding it until the delay passed.
    cm = connman.ConnectionManager()
    async with EchoServer() as server:

        def listener(event: events.Event) -> None:
            if isinstance(event, events.RetryScheduled):
                event.conn.disconnect()

        cm.subscribe(listener)
        resets: list[str] = []
        backoff = connman.Backoff(initial=60.0, cap=60.0, jitter="none")
        conn = cm.connect(server.port, "127.0.0.1", backoff=backoff, on_reset=lambda: resets.append("reset"))
        assert await conn.wait_connected(BOUND)
        server.drop_clients()
        assert await conn.wait_closed(BOUND)
        assert resets == ["reset"]  # the loss was announced before the retry was scheduled
        loop = asyncio.get_running_loop()
        timers = [handle for handle in getattr(loop, "_scheduled", []) if not handle.cancelled()]
        assert not [handle for handle in timers if "_retry_due" in repr(handle)]
        assert_nothing_pending()
