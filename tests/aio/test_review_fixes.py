"""Regression tests for defects a review of the #10/#11 changes found."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import TypeVar

import pytest

import connman
from connman import State
from connman.testing import EchoServer, ServerThread

from ..conftest import BOUND, FAST, SLOW


async def test_a_socket_option_the_kernel_refuses_is_a_failed_attempt(
    cm: connman.ConnectionManager, server: EchoServer
) -> None:
    # 3e6 s is 3e9 ms: more than TCP_USER_TIMEOUT's int holds. Not a hang in CONNECTING.
    conn = cm.connect(server.port, "127.0.0.1", user_timeout=3e6, backoff=SLOW)
    async with asyncio.timeout(BOUND):
        while conn.state is not State.WAITING:
            await conn.wait_changed()
    assert isinstance(conn.last_error, (OverflowError, TypeError))  # setsockopt's refusal of the value
    assert conn.stats.failed_attempts == 1
    assert await conn.disconnect(BOUND)
    await asyncio.wait_for(_no_clients(server), BOUND)


async def _no_clients(server: EchoServer) -> None:
    while server.clients:  # noqa: ASYNC110 - the server's count has no event
        await asyncio.sleep(0.005)


async def test_on_error_does_not_fire_after_disconnect(
    cm: connman.ConnectionManager, server: EchoServer
) -> None:
    errors: list[BaseException] = []

    def on_connect(conn: connman.Connection) -> None:
        conn.disconnect()
        raise RuntimeError("boom")

    conn = cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=errors.append)
    assert await conn.wait_closed(BOUND)
    await asyncio.sleep(0.05)  # a window for a late on_error to show itself
    assert errors == []


def test_a_loop_that_made_a_connection_is_not_kept_alive(server_thread_port: int) -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    for _ in range(3):
        with asyncio.Runner() as runner:

            async def once() -> None:
                async with connman.ConnectionManager() as manager:
                    conn = manager.connect(server_thread_port, "127.0.0.1")
                    assert await conn.wait_connected(BOUND)

            runner.run(once())
            loops.append(weakref.ref(runner.get_loop()))
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]


def test_pool_wait_any_does_not_block_the_thread_of_a_loop_between_runs(server_thread_port: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        manager = connman.ConnectionManager()

        async def make() -> connman.Pool:
            pool = manager.create_pool("between-runs")
            pool.add_connection(server_thread_port, "127.0.0.1", backoff=FAST)
            return pool

        pool = loop.run_until_complete(make())
        wait = pool.wait_any(BOUND)  # on the loop's thread, the loop not running: must not block
        assert not wait.done()
        member = loop.run_until_complete(asyncio.wait_for(_await(wait), BOUND))
        assert member is not None and member.is_connected
        assert loop.run_until_complete(_await(manager.disconnect_all(BOUND)))
    finally:
        loop.close()


T = TypeVar("T")


async def _await(wait: connman.Wait[T]) -> T:
    return await wait


@pytest.fixture
def server_thread_port() -> Iterator[int]:
    with ServerThread() as thread:
        yield thread.port
