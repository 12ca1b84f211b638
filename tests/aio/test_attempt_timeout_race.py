"""A callback that blocks the loop past `connect_timeout` while the attempt connects.

`on_connect` runs inside the protocol's `connection_made`, before `loop.create_connection()` returns to
the attempt. If it blocks the loop past `connect_timeout`, the attempt's deadline fires right after,
and the loop cancels a `create_connection()` whose transport is already up and reported to the
connection. Found by the W4 benchmark under `strace` (#16). The promise: the connection still carries
data within the bound, on that transport or a new one, and `disconnect()` still closes it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import connman
from connman.testing import EchoServer
from tests.aio.test_promises import NO_UVLOOP, LoopFactory, new_uvloop, run_on
from tests.conftest import BOUND, FAST, Recorder

LOOPS = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(
        new_uvloop,
        id="uvloop",
        marks=[
            NO_UVLOOP,
            pytest.mark.xfail(
                strict=True,
                reason="uvloop closes the cancelled attempt's transport without connection_lost: the "
                "connection stays CONNECTED on a dead transport and disconnect() raises (open, #16)",
            ),
        ],
    ),
]


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_an_on_connect_that_outlasts_connect_timeout_leaves_a_working_connection(
    loop_factory: LoopFactory,
) -> None:
    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer() as server:
            rec = Recorder()
            blocked: list[None] = []

            def block_once(conn: connman.Connection) -> None:
                if not blocked:
                    blocked.append(None)
                    time.sleep(0.2)  # the condition under test: the loop blocked past connect_timeout

            conn = cm.connect(
                server.port,
                "127.0.0.1",
                connect_timeout=0.05,
                on_connect=block_once,
                on_data=rec.on_data,
                on_reset=rec.on_reset,
                backoff=FAST,
            )
            await rec.until(lambda: bool(blocked) and conn.is_connected)
            conn.write(b"ping")
            await rec.wait_bytes(4)
            assert bytes(rec.data) == b"ping"
            assert await conn.disconnect(BOUND)

    run_on(loop_factory, body)
