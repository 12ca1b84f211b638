"""A paused server (SIGSTOP): its kernel still accepts connections and acknowledges data and keepalive
probes, so only the idle deadline notices that nothing comes back. No root needed."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import connman
from connman import Cause
from tests.conftest import MS, Recorder


async def test_idle_timeout_finds_a_paused_server_and_recovers_when_it_resumes(
    echo_process: tuple[subprocess.Popen[str], int], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    process, port = echo_process
    idle = 300 * MS
    conn = cm.connect(port, "127.0.0.1", **recorder.callbacks(), idle_timeout=idle, keepalive=(1, 1, 3))
    await recorder.wait("connect")

    async def heartbeat() -> None:  # the application's own ping, which the echo answers
        while True:
            if conn.is_connected:
                conn.write(b".")
            await asyncio.sleep(50 * MS)

    beating = asyncio.get_running_loop().create_task(heartbeat())
    try:
        await recorder.wait_bytes(3)
        loop = asyncio.get_running_loop()
        process.send_signal(signal.SIGSTOP)
        paused_at = loop.time()
        await recorder.wait("reset")
        detected = loop.time() - paused_at
        assert conn.last_cause is Cause.HALF_OPEN
        assert isinstance(conn.last_error, connman.IdleTimeout)
        assert idle * 0.9 <= detected <= 2 * idle + 200 * MS, detected
        print(f"idle_timeout {idle} s: paused server detected in {detected:.2f} s")
        process.send_signal(signal.SIGCONT)
        await recorder.until(lambda: conn.is_connected)
        resumed = len(recorder.data)
        await recorder.wait_bytes(resumed + 3)  # the heartbeat is answered again
    finally:
        beating.cancel()
        process.send_signal(signal.SIGCONT)
