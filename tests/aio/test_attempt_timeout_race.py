"""The attempt's deadline (`connect_timeout`) against a loop blocked while the attempt connects.

`on_connect` runs inside the protocol's `connection_made`, before `loop.create_connection()` returns to
the attempt. If the loop is blocked past `connect_timeout` around that moment, the deadline comes due
either after `connection_made` (the transport is up and reported: the deadline no longer applies) or
just before it (the attempt timed out: a transport that comes up even so is never reported). Found by
the W4 benchmark under `strace` (#16): the deadline cancelled a `create_connection()` whose transport
was up, and uvloop closed that transport without `connection_lost`, so the connection stayed CONNECTED
on a dead transport, `disconnect()` raised and `aclose()` waited forever.

The promises: the connection carries data within the bound, on that transport or a new one; no
`on_reset` without a loss, no `on_connect` for a transport the connection did not keep;
`disconnect()` closes it, and the manager's `aclose()` returns (`run_on` bounds it).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

import connman
from connman.testing import EchoServer
from tests.aio.test_promises import LOOPS, LoopFactory, run_on
from tests.conftest import BOUND, FAST, Recorder

BLOCK = 0.2  # seconds the loop is blocked, 4x connect_timeout
CONNECT_TIMEOUT = 0.05


async def _carries_data_and_closes(rec: Recorder, conn: connman.Connection) -> None:
    await rec.until(lambda: conn.is_connected)
    conn.write(b"ping")
    await rec.wait_bytes(4)
    assert bytes(rec.data) == b"ping"
    assert rec.count("reset") == 0  # nothing was lost
    assert rec.count("connect") == conn.stats.connects  # on_connect only for transports kept
    assert await conn.disconnect(BOUND)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_an_on_connect_that_outlasts_connect_timeout_leaves_a_working_connection(
    loop_factory: LoopFactory,
) -> None:
    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer() as server:
            rec = Recorder()

            def block_once(conn: connman.Connection) -> None:
                rec.on_connect(conn)
                if rec.count("connect") == 1:
                    time.sleep(BLOCK)  # the condition under test: the loop blocked past connect_timeout

            conn = cm.connect(
                server.port,
                "127.0.0.1",
                connect_timeout=CONNECT_TIMEOUT,
                on_connect=block_once,
                on_data=rec.on_data,
                on_reset=rec.on_reset,
                backoff=FAST,
            )
            await _carries_data_and_closes(rec, conn)
            # The deadline came due after connection_made: the same transport, never dropped.
            assert conn.stats.connects == 1

    run_on(loop_factory, body)


Dialer = Callable[[str, int], Awaitable[socket.socket]]


def _blocks_then_hands_over(blocked: list[None]) -> Dialer:
    # The loop is blocked in the step that hands the socket over: on asyncio's loop the deadline then
    # comes due after connection_made; on uvloop (timers before callbacks) just before it.
    async def dialer(host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=BOUND)  # loopback: at once
        if not blocked:
            blocked.append(None)
            time.sleep(BLOCK)  # noqa: ASYNC251 - the condition under test
        return sock

    return dialer


def _blocks_yields_then_hands_over(blocked: list[None]) -> Dialer:
    # The deadline comes due in the turn that hands the socket over: on asyncio's loop after the step
    # that makes the transport, before connection_made; on uvloop before the step.
    async def dialer(host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=BOUND)
        try:
            if not blocked:
                blocked.append(None)
                time.sleep(BLOCK)  # noqa: ASYNC251 - the condition under test
                await asyncio.sleep(0)
        except BaseException:
            sock.close()
            raise
        return sock

    return dialer


def _hands_over_then_loop_blocks(blocked: list[None]) -> Dialer:
    # The loop is blocked right after the step that makes the transport, before connection_made: on
    # uvloop the deadline then comes due just before connection_made; on asyncio's loop just after.
    async def dialer(host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=BOUND)
        if blocked:
            return sock
        blocked.append(None)
        loop = asyncio.get_running_loop()
        handed_over = loop.create_future()

        def wake_then_block() -> None:
            handed_over.set_result(None)  # the attempt's next step runs in the next turn ...
            loop.call_soon(time.sleep, BLOCK)  # ... and this right after it, in the same turn

        loop.call_soon(wake_then_block)
        try:
            await handed_over
        except BaseException:
            sock.close()
            raise
        return sock

    return dialer


@pytest.mark.parametrize("loop_factory", LOOPS)
@pytest.mark.parametrize(
    "make_dialer", [_blocks_then_hands_over, _blocks_yields_then_hands_over, _hands_over_then_loop_blocks]
)
def test_a_deadline_due_around_connection_made_leaves_a_working_connection(
    loop_factory: LoopFactory, make_dialer: Callable[[list[None]], Dialer]
) -> None:
    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer() as server:
            rec = Recorder()
            blocked: list[None] = []
            conn = cm.connect(
                server.port,
                "127.0.0.1",
                connect_timeout=CONNECT_TIMEOUT,
                dialer=make_dialer(blocked),
                on_connect=rec.on_connect,
                on_data=rec.on_data,
                on_reset=rec.on_reset,
                backoff=FAST,
            )
            await rec.until(lambda: bool(blocked))
            await _carries_data_and_closes(rec, conn)

    run_on(loop_factory, body)
