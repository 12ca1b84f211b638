"""The dispatcher's promises: one connection's callbacks run one at a time, in order, on one path.

Callbacks of one connection never overlap, even when one asks for another, and every callback,
queued or not, sync or async, `on_error` included, goes through one path (the slow-callback
warning, catching, reporting).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND, SLOW, Recorder

# ---- one path: a queued callback is timed like any other ---------------------------------------


async def test_a_sync_callback_queued_behind_an_async_one_is_warned_about_when_slow(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        inside.set()
        await release.wait()

    def sluggish_on_reset() -> None:
        time.sleep(0.15)  # longer than SLOW_CALLBACK (0.1 s): it blocks the loop, on purpose
        rec.add("reset")

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, on_reset=sluggish_on_reset, backoff=SLOW)
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    async with asyncio.timeout(BOUND):
        await inside.wait()
    conn.reconnect()  # on_reset queues behind the async on_data still running
    with caplog.at_level(logging.WARNING, logger="connman"):
        release.set()
        await rec.wait("reset")
    messages = [r.getMessage() for r in caplog.records]
    assert any("on_reset callback" in m and "sluggish_on_reset blocked the event loop" in m for m in messages)


# ---- on_error is a callback like the others ------------------------------------------------------


async def test_an_async_on_error_is_awaited(server: EchoServer, cm: connman.ConnectionManager) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        raise RuntimeError("boom")

    async def on_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        rec.add("error", exc)

    cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=on_error)
    await rec.wait("error")
    assert [str(exc) for _, exc in rec.events] == ["boom"]


async def test_on_error_runs_right_after_the_failed_callback_and_never_overlaps(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()
    release = asyncio.Event()

    def on_data(data: bytes) -> None:
        rec.add("data")
        if rec.count("data") == 1:
            conn.reconnect()  # asks for on_reset, which must wait for on_error
            raise ValueError("boom in on_data")

    async def on_error(exc: BaseException) -> None:
        rec.add("error-start")
        await release.wait()
        rec.add("error-end")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=lambda: rec.add("reset"),
        on_error=on_error,
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("error-start")
    release.set()
    await rec.wait("connect", 2)
    assert rec.kinds() == ["connect", "data", "error-start", "error-end", "reset", "connect"]


async def test_an_async_on_error_that_raises_is_only_logged(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        raise RuntimeError("boom")

    async def on_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        rec.add("error", exc)
        raise RuntimeError("on_error broke")  # in the same step: logged before the test wakes

    with caplog.at_level(logging.ERROR, logger="connman"):
        cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=on_error)
        await rec.wait("error")
    assert rec.count("error") == 1  # not called again with its own failure
    assert [r.getMessage() for r in caplog.records] == [
        "on_connect callback failed",
        "on_error callback failed",
    ]


# ---- no overlap: a callback asked for by another one runs after it -----------------------------


async def test_reconnect_inside_on_data_runs_on_reset_after_on_data_returns(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_data(data: bytes) -> None:
        rec.add("data-start")
        conn.reconnect()
        rec.add("data-end")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=lambda: rec.add("reset"),
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("connect", 2)
    assert rec.kinds() == ["connect", "data-start", "data-end", "reset", "connect"]


async def test_reconnect_inside_on_connect_runs_on_reset_after_on_connect_returns(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        rec.add("connect-start")
        if rec.count("connect-start") == 1:
            conn.reconnect()
        rec.add("connect-end")

    cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_reset=lambda: rec.add("reset"))
    await rec.wait("connect-end", 2)
    assert rec.kinds() == ["connect-start", "connect-end", "reset", "connect-start", "connect-end"]


async def test_a_queued_on_reset_still_hands_over_its_resume_callable(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    def on_data(data: bytes) -> None:
        rec.add("data-start")
        conn.reconnect()
        rec.add("data-end")

    def on_reset() -> Callable[[], None]:
        rec.add("reset")
        return lambda: rec.add("resume")

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=lambda conn: rec.add("connect"),
        on_data=on_data,
        on_reset=on_reset,
        backoff=SLOW,
    )
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("resume")
    assert rec.kinds() == ["connect", "data-start", "data-end", "reset", "resume"]


# ---- disconnect() and the callbacks still to come ------------------------------------------------


async def test_disconnect_cancels_the_async_callback_running_and_drops_those_queued(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        rec.add("data")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            rec.add("cancelled")
            raise

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, on_reset=lambda: rec.add("reset"))
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    await rec.wait("data")
    conn.reconnect()  # on_reset queues behind on_data
    assert await conn.disconnect(BOUND)
    assert rec.kinds() == ["data", "cancelled"]


async def test_disconnect_from_inside_an_async_callback_lets_it_finish(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_data(data: bytes) -> None:
        conn.disconnect()
        await asyncio.sleep(0)
        rec.add("finished")

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data)
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    assert await conn.wait_closed(BOUND)
    assert rec.kinds() == ["finished"]


async def test_an_async_callback_cancelled_before_it_started_is_closed(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_reset() -> None:
        rec.add("reset")

    conn = cm.connect(server.port, "127.0.0.1", on_reset=on_reset)
    assert await conn.wait_connected(BOUND)
    conn.reconnect()  # on_reset's coroutine is made, its task not started yet
    assert await conn.disconnect(BOUND)
    assert rec.kinds() == []
    # Had its coroutine been left unclosed, collecting it would warn "never awaited" (an error here).
