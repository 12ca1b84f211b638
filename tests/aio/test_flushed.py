"""`wait_flushed()`: every byte written handed to the kernel, from any thread, across a reconnect."""

from __future__ import annotations

import asyncio
import threading

import connman
from connman import State
from connman.testing import EchoServer

from ..conftest import BOUND, FAST

MIB = 1 << 20


async def test_wait_flushed_is_true_once_a_reading_peer_took_everything(
    cm: connman.ConnectionManager,
) -> None:
    async with EchoServer(mode="silent") as server:
        conn = cm.connect(server.port, "127.0.0.1")
        assert await conn.wait_connected(BOUND)
        conn.write(b"x" * (8 * MIB))
        assert conn.transport is not None and conn.transport.get_write_buffer_size() > 0
        assert await conn.wait_flushed(BOUND)
        assert conn.transport.get_write_buffer_size() == 0
        assert conn.stats.bytes_out == 8 * MIB


async def test_wait_flushed_times_out_against_a_peer_that_never_reads(cm: connman.ConnectionManager) -> None:
    async with EchoServer(mode="deaf") as server:
        conn = cm.connect(server.port, "127.0.0.1")
        assert await conn.wait_connected(BOUND)
        conn.write(b"x" * (8 * MIB))
        assert await conn.wait_flushed(0.2) is False
        conn.transport.abort()  # type: ignore[union-attr]  # let the test's teardown close at once


async def test_wait_flushed_from_a_plain_thread_counts_its_batch(cm: connman.ConnectionManager) -> None:
    async with EchoServer(mode="silent") as server:
        conn = cm.connect(server.port, "127.0.0.1")
        assert await conn.wait_connected(BOUND)
        outcome: list[bool] = []

        def writer() -> None:
            for _ in range(16):
                conn.write(b"y" * (256 * 1024))
            outcome.append(bool(conn.wait_flushed(BOUND)))  # blocks in this thread

        thread = threading.Thread(target=writer)
        thread.start()
        await asyncio.to_thread(thread.join, BOUND)
        assert outcome == [True]
        assert conn.stats.bytes_out == 4 * MIB


async def test_wait_flushed_waits_for_the_queue_across_the_reconnect(
    cm: connman.ConnectionManager, down_server: EchoServer
) -> None:
    conn = cm.connect(down_server.port, "127.0.0.1", backoff=FAST, queue_while_down=1 << 16)
    conn.write(b"queued")
    assert await conn.wait_flushed(0.05) is False  # down, the bytes still queued
    await down_server.start()
    assert await conn.wait_flushed(BOUND)
    assert conn.stats.queued == 0 and conn.stats.bytes_out == 6


async def test_wait_flushed_is_false_once_disconnected_with_bytes_queued(
    cm: connman.ConnectionManager, down_server: EchoServer
) -> None:
    conn = cm.connect(down_server.port, "127.0.0.1", backoff=FAST, queue_while_down=1 << 16)
    conn.write(b"lost")
    waiting = asyncio.ensure_future(conn.wait_flushed(BOUND))
    await asyncio.sleep(0.01)
    await conn.disconnect()
    assert conn.state is State.CLOSED
    assert await waiting is False
    assert await conn.wait_flushed(BOUND) is False  # and at once, afterwards
