"""The example clients (`connman.Pipeline` + `connman.framing.split_by`) against real memcached and
redis-server, killed with SIGKILL and restarted three times under traffic from 8 concurrent callers:
each time the client recovers, and every request is answered correctly (its own key's value, never
another caller's) or failed to its caller (`NotConnected` or `TimeoutError`), none left hanging."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

import connman
from tests.real.conftest import EXAMPLES, RealServer

RETRY = connman.Backoff(initial=0.01, factor=2, cap=0.1, jitter="equal", min_uptime=0.2)
WORKERS = 8
RESTARTS = 3


def make_client(server: RealServer) -> Any:
    if server.name == "memcached":
        from memcache_client import Memcache

        return Memcache(server.port, timeout=1.0, backoff=RETRY)
    from redis_client import Redis

    return Redis(server.port, timeout=1.0, backoff=RETRY)


@pytest.mark.usefixtures("examples_on_path")
async def test_client_survives_sigkill_restarts_and_never_leaves_a_request_hanging(
    real_server: RealServer,
) -> None:
    client = make_client(real_server)
    answered = failed = in_flight = kills = 0
    stop = asyncio.Event()
    progress = asyncio.Event()

    async def worker(number: int) -> None:
        nonlocal answered, failed, in_flight
        n = 0
        while not stop.is_set():
            n += 1
            key, value = f"w{number}:{n}", b"%d" % n
            in_flight += 1
            kills_before = kills
            try:
                async with asyncio.timeout(5):  # far above the client's own 1 s: reaching it is a hang
                    assert await client.set(key, value)
                    got = await client.get(key)
                if got is None and kills != kills_before:
                    failed += 1  # killed between the set and the get: the restarted server is empty
                    continue
                assert got == value
                answered += 1
                progress.set()
            except (connman.NotConnected, TimeoutError):
                failed += 1
                await asyncio.sleep(0.005)
            finally:
                in_flight -= 1

    async def answered_more(than: int) -> None:
        async with asyncio.timeout(10):
            while answered < than + 20:
                progress.clear()
                await progress.wait()

    workers = [asyncio.get_running_loop().create_task(worker(n)) for n in range(WORKERS)]
    try:
        await answered_more(0)
        for _ in range(RESTARTS):
            kills += 1
            real_server.kill()
            await asyncio.sleep(0.05)  # requests keep coming while it is down: each must fail, not hang
            await asyncio.to_thread(real_server.start)
            await answered_more(answered)  # recovered
    finally:
        stop.set()
        done, pending = await asyncio.wait(workers, timeout=5)
        await client.close()
    assert pending == set()
    for task in done:
        task.result()  # no worker died of an unexpected error
    assert in_flight == 0
    assert client.conn.stats.resets >= RESTARTS
    assert client.pipeline.in_flight == 0
    assert failed >= 1  # the outages were seen by callers, as failures, not as hangs
    print(f"{real_server.name}: {answered} request pairs answered, {failed} failed, 0 hanging")


SCRIPTS = {
    "memcached": (
        "memcache_client.py",
        [
            "greeting:0 = b'hello 0'",
            "greeting:1 = b'hello 1'",
            "greeting:2 = b'hello 2'",
            "deleted greeting:0: True",
            "greeting:0 = None",
        ],
    ),
    "redis-server": ("redis_client.py", ["PING: True", "greeting = b'hello'"]),
}


def test_example_script_runs_as_written(real_server: RealServer) -> None:
    script, expected = SCRIPTS[real_server.name]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(real_server.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == expected
