"""Heartbeats against real peers on loopback: a paused process (SIGSTOP: its kernel still accepts and
acknowledges, so keepalive sees nothing wrong), a peer that reads and never writes, and quiet peers
that answer pings."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess

import pytest

import connman
from connman import Cause
from connman.testing import EchoServer
from tests.conftest import FAST, MS, Recorder

INTERVAL = 100 * MS
TIMEOUT = 200 * MS


async def test_a_paused_peer_is_lost_as_half_open_within_two_intervals_and_the_timeout(
    echo_process: tuple[subprocess.Popen[str], int], cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    process, port = echo_process
    beat = connman.Heartbeat(INTERVAL, TIMEOUT, b".")
    conn = cm.connect(port, "127.0.0.1", **recorder.callbacks(), heartbeat=beat, backoff=FAST)
    try:
        await recorder.wait_bytes(2)  # two pings answered: the application itself never writes
        loop = asyncio.get_running_loop()
        process.send_signal(signal.SIGSTOP)
        paused_at = loop.time()
        await recorder.wait("reset")
        detected = loop.time() - paused_at
        assert conn.last_cause is Cause.HALF_OPEN
        assert isinstance(conn.last_error, connman.HeartbeatTimeout)
        # Never before a ping went unanswered for `timeout`; at most 2 × interval + timeout after the
        # last byte (plus the loop's lag on a loaded machine).
        assert TIMEOUT * 0.9 <= detected <= 2 * INTERVAL + TIMEOUT + 300 * MS, detected
        process.send_signal(signal.SIGCONT)
        await recorder.wait("connect", 2)
        answered = len(recorder.data)
        await recorder.wait_bytes(answered + 2)  # pinged and answered again
    finally:
        process.send_signal(signal.SIGCONT)


async def test_a_peer_that_reads_and_never_writes_is_lost_and_got_the_pings(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent", keep_data=True) as server:
        beat = connman.Heartbeat(INTERVAL, TIMEOUT, b"PING\r\n")
        conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), heartbeat=beat, backoff=FAST)
        await recorder.wait("reset")
        assert conn.last_cause is Cause.HALF_OPEN
        assert isinstance(conn.last_error, connman.HeartbeatTimeout)
        assert bytes(server.data).startswith(b"PING\r\n")  # the ping reached the peer, whole
        assert recorder.kinds()[:2] == ["connect", "reset"]
        conn.disconnect()


async def test_a_quiet_peer_that_answers_pings_is_never_dropped_over_30_intervals(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    pings: list[float] = []
    loop = asyncio.get_running_loop()

    def send(conn: connman.Connection) -> None:  # the application pings through its own protocol
        pings.append(loop.time())
        conn.write(b"?")

    beat = connman.Heartbeat(50 * MS, 500 * MS, send)
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), heartbeat=beat)
    await recorder.until(lambda: len(pings) >= 30, timeout=30 * 2 * 550 * MS + 5)
    assert conn.stats.resets == 0, conn.last_error
    assert conn.is_connected
    await recorder.wait_bytes(29)
    assert set(bytes(recorder.data)) == {ord("?")}  # the echo of every ping reached on_data


async def test_pings_keep_a_quiet_connection_inside_its_idle_timeout(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # Both watches on one timer: the replies to the pings are the traffic idle_timeout wants.
    beat = connman.Heartbeat(50 * MS, 500 * MS, b".")
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), heartbeat=beat, idle_timeout=300 * MS)
    await recorder.wait_bytes(15, timeout=30)  # 15 pings, well past several idle timeouts
    assert conn.stats.resets == 0, conn.last_error


async def test_an_async_send_runs_in_turn_and_its_bytes_reach_the_peer(cm: connman.ConnectionManager) -> None:
    async with EchoServer(keep_data=True) as server:
        rec = Recorder()
        sent: list[connman.Connection] = []

        async def send(conn: connman.Connection) -> None:
            await asyncio.sleep(0)
            sent.append(conn)
            conn.write(b"PING\r\n")

        conn = cm.connect(
            server.port,
            "127.0.0.1",
            on_data=rec.on_data,
            heartbeat=connman.Heartbeat(INTERVAL, TIMEOUT, send),
        )
        await rec.wait_bytes(12)
        assert sent[:2] == [conn, conn]
        assert bytes(server.data[:12]) == b"PING\r\n" * 2
        assert conn.stats.resets == 0


async def test_an_async_send_still_finds_a_peer_that_never_answers(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # An async send pauses reading while it runs (as every async callback): its ping used to be
    # forgotten at the resume, so the silent peer was pinged forever and never dropped.
    async with EchoServer(mode="silent", keep_data=True) as server:

        async def send(conn: connman.Connection) -> None:
            conn.write(b"PING\r\n")
            await asyncio.sleep(0)

        conn = cm.connect(
            server.port,
            "127.0.0.1",
            **recorder.callbacks(),
            heartbeat=connman.Heartbeat(INTERVAL, TIMEOUT, send),
            backoff=FAST,
        )
        await recorder.wait("reset")
        assert conn.last_cause is Cause.HALF_OPEN
        assert isinstance(conn.last_error, connman.HeartbeatTimeout)
        assert bytes(server.data).startswith(b"PING\r\n")
        conn.disconnect()


async def test_a_send_that_raises_is_reported_and_the_silence_ends_the_connection(
    cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    async with EchoServer() as server:
        rec = Recorder()
        errors: list[BaseException] = []

        def send(conn: connman.Connection) -> None:
            raise RuntimeError("no ping today")

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            rec.add("error", exc)

        with caplog.at_level(logging.ERROR, logger="connman"):
            conn = cm.connect(
                server.port,
                "127.0.0.1",
                on_reset=rec.on_reset,
                on_error=on_error,
                heartbeat=connman.Heartbeat(INTERVAL, TIMEOUT, send),
                backoff=FAST,
            )
            await rec.wait("reset")
        assert isinstance(errors[0], RuntimeError)
        assert conn.last_cause is Cause.HALF_OPEN
        assert "heartbeat send callback failed" in caplog.text
