"""Hostile peers: a server that floods 1 GiB must not grow the client's memory or stall its loop, and
another connection on the same loop stays responsive, with a sync or a slow async `on_data`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import connman
from connman.testing import EchoServer
from tests.conftest import BOUND

FLOOD = 1 << 30
PAGE = os.sysconf("SC_PAGE_SIZE")
FLOOD_PROCESS = Path(__file__).with_name("flood_process.py")


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.fixture
def flood_port() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(FLOOD_PROCESS), str(FLOOD)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    yield int(process.stdout.readline())
    process.kill()
    process.wait(5)
    process.stdout.close()


@pytest.mark.parametrize("slow_async", [False, True], ids=["sync-on_data", "slow-async-on_data"])
async def test_a_1_gib_flood_keeps_memory_flat_and_the_loop_responsive(
    flood_port: int, server: EchoServer, slow_async: bool
) -> None:
    loop = asyncio.get_running_loop()
    received = 0
    done = asyncio.Event()

    def count(data: bytes) -> None:
        nonlocal received
        received += len(data)
        if received >= FLOOD:
            done.set()

    async def count_slowly(data: bytes) -> None:
        count(data)
        await asyncio.sleep(0.0002)  # an application that does some awaiting per chunk

    lags: list[float] = []
    peak = baseline = rss()
    round_trips: list[float] = []

    async def watch_the_loop() -> None:
        nonlocal peak
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)
            peak = max(peak, rss())

    async with connman.ConnectionManager() as cm:
        echoes = asyncio.Queue[bytes]()
        other = cm.connect(server.port, "127.0.0.1", on_data=echoes.put_nowait)
        assert await other.wait_connected(BOUND)

        async def ping_the_other_connection() -> None:
            while True:
                sent = loop.time()
                other.write(b"ping")
                got = b""
                while len(got) < 4:
                    got += await echoes.get()
                round_trips.append(loop.time() - sent)
                await asyncio.sleep(0.01)

        watcher = loop.create_task(watch_the_loop())
        pinger = loop.create_task(ping_the_other_connection())
        try:
            cm.connect(flood_port, "127.0.0.1", on_data=count_slowly if slow_async else count)
            async with asyncio.timeout(60):
                await done.wait()
        finally:
            watcher.cancel()
            pinger.cancel()
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)]
    print(
        f"1 GiB flood ({'slow async' if slow_async else 'sync'} on_data):"
        f" RSS +{(peak - baseline) / 2**20:.1f} MiB,"
        f" loop lag p99 {p99 * 1000:.1f} ms over {len(lags)} samples,"
        f" other connection {len(round_trips)} round trips, worst {max(round_trips) * 1000:.1f} ms"
    )
    assert received >= FLOOD
    assert peak - baseline < 16 * 2**20
    assert p99 < 0.020
    assert len(round_trips) >= 10
