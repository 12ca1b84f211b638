"""Nothing leaks over thousands of reconnects: file descriptors, tasks, timers, threads, memory.

Each test runs 5,000 cycles in this process and compares what it holds before and after (after a
warm-up, so caches that fill once are not counted). The cycles are real: the server drops the
connection (or refuses it) and connman notices and reconnects.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import tracemalloc
import weakref
from dataclasses import dataclass

import connman
from connman import State
from connman.testing import EchoServer
from tests.conftest import BOUND

CYCLES = 5_000
WARM_UP = 500
MEMORY_BOUND = 64 * 1024

#: Retry almost at once, and treat every connection as stable: each cycle is one full reconnect.
QUICK = connman.Backoff(initial=0.0001, factor=1, cap=0.0001, jitter="none", min_uptime=0)


@dataclass(frozen=True)
class Holdings:
    fds: int
    tasks: int
    timers: int
    threads: int
    memory: int


def holdings() -> Holdings:
    gc.collect()
    loop = asyncio.get_running_loop()
    timers = [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
    return Holdings(
        fds=len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0,
        tasks=len(asyncio.all_tasks(loop)),
        timers=len(timers),
        threads=threading.active_count(),
        memory=tracemalloc.get_traced_memory()[0],
    )


def assert_nothing_grew(before: Holdings, after: Holdings) -> None:
    print(
        f"after {CYCLES} cycles: fds {before.fds}->{after.fds}, tasks {before.tasks}->{after.tasks},"
        f" timers {before.timers}->{after.timers}, threads {before.threads}->{after.threads},"
        f" traced memory {after.memory - before.memory:+d} bytes"
    )
    assert after.fds == before.fds
    assert after.tasks == before.tasks
    assert after.timers == before.timers
    assert after.threads == before.threads
    assert after.memory - before.memory < MEMORY_BOUND, after.memory - before.memory


async def test_5000_reconnect_cycles_leak_nothing() -> None:
    connects = 0
    up = asyncio.Event()

    def on_connect(conn: connman.Connection) -> None:
        nonlocal connects
        connects += 1
        up.set()

    async with EchoServer() as server, connman.ConnectionManager() as cm:
        conn = cm.connect(server.port, "127.0.0.1", on_connect=on_connect, backoff=QUICK)

        async def cycle(conn: connman.Connection) -> None:
            up.clear()
            server.drop_clients()
            async with asyncio.timeout(BOUND):
                await up.wait()
            conn.write(b"x")

        await up.wait()
        tracemalloc.start()
        try:
            for _ in range(WARM_UP):
                await cycle(conn)
            before = holdings()
            for _ in range(CYCLES):
                await cycle(conn)
            after = holdings()
        finally:
            tracemalloc.stop()
        assert connects == 1 + WARM_UP + CYCLES
        assert conn.stats.resets == WARM_UP + CYCLES
        assert_nothing_grew(before, after)

        ref = weakref.ref(conn)
        await conn.disconnect()
        del conn
        gc.collect()
        assert ref() is None  # nothing holds a disconnected connection


async def test_5000_refused_attempts_leak_nothing(down_server: EchoServer) -> None:
    async with connman.ConnectionManager() as cm:
        tracemalloc.start()
        try:
            warm = cm.connect(down_server.port, "127.0.0.1", backoff=QUICK, max_attempts=WARM_UP)
            async with asyncio.timeout(BOUND):
                while warm.state is not State.FAILED:
                    await warm.wait_changed()
            await warm.disconnect()
            before = holdings()
            conn = cm.connect(down_server.port, "127.0.0.1", backoff=QUICK, max_attempts=CYCLES)
            async with asyncio.timeout(4 * BOUND):
                while conn.state is not State.FAILED:
                    await conn.wait_changed()
            assert conn.stats.failed_attempts == CYCLES
            await conn.disconnect()
            ref = weakref.ref(conn)
            del conn, warm
            after = holdings()
        finally:
            tracemalloc.stop()
        assert ref() is None
        assert_nothing_grew(before, after)
