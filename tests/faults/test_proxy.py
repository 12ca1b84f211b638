"""The fault proxy's own faults that the matrix does not exercise: latency, slicing, the byte limit,
and a target that refuses."""

from __future__ import annotations

import asyncio

import connman
from connman import Cause
from connman.testing import EchoServer, FaultProxy
from tests.conftest import BOUND, FAST, MS, Recorder


async def test_latency_delays_each_way_and_keeps_order(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with FaultProxy(server.port) as proxy:
        proxy.latency = 40 * MS
        conn = cm.connect(proxy.port, "127.0.0.1", **recorder.callbacks())
        await recorder.wait("connect")
        loop = asyncio.get_running_loop()
        sent = loop.time()
        for n in range(5):
            conn.write(b"%d" % n)
        await recorder.wait_bytes(5)
        assert loop.time() - sent >= 2 * proxy.latency * 0.9  # there and back
        assert bytes(recorder.data) == b"01234"


async def test_slicing_delivers_in_pieces(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with FaultProxy(server.port) as proxy:
        proxy.slice_bytes = 3
        proxy.slice_delay = 5 * MS
        conn = cm.connect(proxy.port, "127.0.0.1", **recorder.callbacks())
        await recorder.wait("connect")
        conn.write(b"abcdefghijkl")
        await recorder.wait_bytes(12)
        chunks = [value for kind, value in recorder.events if kind == "data"]
        assert bytes(recorder.data) == b"abcdefghijkl"
        assert max(len(chunk) for chunk in chunks) <= 3


async def test_limit_closes_after_n_bytes(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with FaultProxy(server.port) as proxy:
        proxy.limit_bytes = 10  # both ways: 5 out and 5 back
        conn = cm.connect(proxy.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
        await recorder.wait("connect")
        conn.write(b"0123456789")
        await recorder.wait("reset")
        assert conn.last_cause is Cause.EOF
        assert server.received == 10
        assert bytes(recorder.data) == b""  # the 10 bytes were used up on the way out


async def test_a_refusing_target_resets_the_client(
    cm: connman.ConnectionManager, down_server: EchoServer
) -> None:
    async with FaultProxy(down_server.port) as proxy:
        conn = cm.connect(proxy.port, "127.0.0.1", backoff=FAST)
        async with asyncio.timeout(BOUND):
            while conn.stats.resets < 1:
                await conn.wait_changed()
        assert conn.stats.last_cause is Cause.RESET
        assert proxy.accepts >= 1


async def test_chunks_under_latency_share_one_timer_and_closing_cancels_it(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with FaultProxy(server.port) as proxy:
        proxy.latency = 10.0  # nothing is delivered during the test
        conn = cm.connect(proxy.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
        await recorder.wait("connect")
        await recorder.until(lambda: proxy.clients == 1)
        for n in range(3):
            conn.write(b"%d" % n)
            await asyncio.sleep(MS)  # separate reads at the proxy, separate chunks

        def pump_timers() -> list[asyncio.TimerHandle]:
            scheduled = getattr(asyncio.get_running_loop(), "_scheduled", [])
            return [h for h in scheduled if not h.cancelled() and "pump" in repr(h)]

        assert len(pump_timers()) == 1
        proxy.close_all()
        assert pump_timers() == []
