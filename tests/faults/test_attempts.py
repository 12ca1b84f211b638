"""Faults that make attempts fail: SYN blackhole, DNS, TLS, refusal; giving up; the flap guard;
a peer that never reads (write back-pressure)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl

import pytest

import connman
from connman import Cause, State
from connman.testing import EchoServer, SynBlackhole
from tests.conftest import BOUND, FAST, MS, Recorder


async def until_state(conn: connman.Connection, state: State) -> None:
    async with asyncio.timeout(BOUND):
        while conn.state is not state:
            await conn.wait_changed()


async def test_syn_blackhole_is_a_connect_timeout_then_recovers(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    with SynBlackhole() as hole:
        conn = cm.connect(
            hole.port, "127.0.0.1", **recorder.callbacks(), connect_timeout=50 * MS, backoff=FAST
        )
        async with asyncio.timeout(BOUND):
            while conn.stats.failed_attempts < 2:
                await conn.wait_changed()
        assert isinstance(conn.last_error, connman.ConnectTimeout)
        assert conn.last_error.errno is None  # ours, not a kernel ETIMEDOUT
        assert "timed out after 0.05 s (connect_timeout)" in str(conn.last_error)
        assert conn.last_cause is Cause.TIMEOUT
        port = hole.port
    async with EchoServer(port=port):  # the port answers again
        await recorder.wait("connect")
    assert recorder.count("reset") == 0


async def test_dns_failure_then_success_through_the_resolver_hook(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> str:
        asked.append((host, port))
        if len(asked) <= 3:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return "127.0.0.1"

    conn = cm.connect(server.port, "db.internal", **recorder.callbacks(), resolver=resolver, backoff=FAST)
    async with asyncio.timeout(BOUND):
        while conn.stats.failed_attempts < 1:
            await conn.wait_changed()
    assert conn.last_cause is Cause.DNS
    assert isinstance(conn.last_error, socket.gaierror)
    await recorder.wait("connect")
    assert asked == [("db.internal", server.port)] * 4  # resolved again on every attempt
    assert conn.stats.failed_attempts == 3
    assert conn.peername[0] == "127.0.0.1"


async def test_a_sync_resolver_and_one_returning_garbage(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    good = cm.connect(server.port, "anything", resolver=lambda host, port: "127.0.0.1")
    assert await good.wait_connected(BOUND)
    bad = cm.connect(server.port, "anything", resolver=lambda host, port: 42, max_attempts=1)  # type: ignore[arg-type,return-value]
    await until_state(bad, State.FAILED)
    assert isinstance(bad.last_error, TypeError)
    assert "resolver must return an address str or a list of them, not 42" in str(bad.last_error)


async def test_an_unresolvable_name_is_a_failed_attempt_not_a_value_error(
    cm: connman.ConnectionManager,
) -> None:
    # An empty label is refused by the resolver library itself, before any query goes out.
    gave_up: list[BaseException] = []
    conn = cm.connect(1, "bad..name", max_attempts=2, backoff=FAST, on_give_up=gave_up.append)
    await until_state(conn, State.FAILED)
    assert gave_up == [conn.last_error]
    assert conn.stats.failed_attempts == 2


async def test_give_up_after_a_total_deadline(down_server: EchoServer, cm: connman.ConnectionManager) -> None:
    gave_up: list[BaseException] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn = cm.connect(
        down_server.port, "127.0.0.1", backoff=FAST, give_up_after=150 * MS, on_give_up=gave_up.append
    )
    await until_state(conn, State.FAILED)
    elapsed = loop.time() - started
    assert 100 * MS <= elapsed <= 150 * MS + 100 * MS  # no attempt starts after the deadline
    assert conn.last_cause is Cause.REFUSED
    assert isinstance(conn.last_error, ConnectionRefusedError)
    assert gave_up == [conn.last_error]
    stats = conn.stats
    assert stats.state is State.FAILED
    assert stats.last_cause is Cause.REFUSED
    assert stats.failed_attempts >= 3
    with pytest.raises(connman.GaveUp):
        conn.write(b"x")


async def test_tls_failure_each_attempt_is_a_tls_hello_never_plain_text(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # A plain-text server that echoes: the client gets its own ClientHello back, a TLS error.
    async with EchoServer(keep_data=True) as plain:
        conn = cm.connect(
            plain.port, "127.0.0.1", **recorder.callbacks(), ssl=True, backoff=FAST, max_attempts=3
        )
        await until_state(conn, State.FAILED)
        assert conn.last_cause is Cause.TLS
        assert isinstance(conn.last_error, ssl.SSLError)
        assert plain.accepts == 3
        assert plain.data[:1] == b"\x16"  # a TLS handshake record, every time
        assert b"GET" not in plain.data and recorder.events == []


async def test_flap_guard_against_a_server_that_accepts_and_closes(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    def on_connect(conn: connman.Connection) -> None:
        times.append(loop.time())

    async with EchoServer(mode="close") as flappy:
        cm.connect(flappy.port, "127.0.0.1", on_connect=on_connect, on_reset=recorder.on_reset, backoff=FAST)
        await recorder.wait("reset", 11)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Each connection lived less than min_uptime, so the delays grew to the cap instead of restarting
    # at `initial` (the original reconnected every 20 ms here, forever).
    assert all(later >= earlier - 5 * MS for earlier, later in itertools.pairwise(gaps))
    assert min(gaps[-3:]) >= FAST.cap * 0.9


async def test_a_peer_that_never_reads_pushes_back_on_write(cm: connman.ConnectionManager) -> None:
    async with EchoServer(mode="deaf") as deaf:
        limit = 4 * 1024 * 1024
        conn = cm.connect(deaf.port, "127.0.0.1", max_write_buffer=limit)
        assert await conn.wait_connected(BOUND)
        chunk = b"x" * 65536
        writes = 0
        while conn.write(chunk):
            writes += 1
            assert writes < 10_000, "the high-water mark never said stop"
        assert not conn.writable
        for _ in range(limit // len(chunk)):
            if conn.transport.get_write_buffer_size() + len(chunk) > limit:  # type: ignore[union-attr]
                break
            conn.write(chunk)
        transport = conn.transport
        assert transport is not None
        while transport.get_write_buffer_size() + len(chunk) <= limit:
            conn.write(chunk)
        with pytest.raises(connman.BufferFull, match="max_write_buffer=4194304"):
            conn.write(chunk)
        assert conn.transport is not None
        assert conn.transport.get_write_buffer_size() <= limit
        assert not await conn.drain(50 * MS)  # still blocked
        deaf.drop_clients()
        await conn.disconnect()


async def test_disconnect_racing_attempt_faults(cm: connman.ConnectionManager, recorder: Recorder) -> None:
    """disconnect() while an attempt hangs on a SYN blackhole, on a slow resolver, and in a TLS
    handshake with a server that never answers: CLOSED at once, no callback, nothing left behind."""
    resolving = asyncio.Event()

    async def slow_resolver(host: str, port: int) -> str:
        resolving.set()
        await asyncio.sleep(30)
        return "127.0.0.1"

    with SynBlackhole() as hole:
        async with EchoServer(mode="silent") as silent:
            conns = [
                cm.connect(hole.port, "127.0.0.1", **recorder.callbacks()),
                cm.connect(1, "db.internal", **recorder.callbacks(), resolver=slow_resolver),
                cm.connect(silent.port, "127.0.0.1", **recorder.callbacks(), ssl=True),
            ]
            async with asyncio.timeout(BOUND):
                await resolving.wait()
            await recorder.until(lambda: silent.accepts >= 1)  # the TLS attempt is in its handshake
            assert [conn.state for conn in conns] == [State.CONNECTING] * 3
            for conn in conns:
                conn.disconnect()
                assert conn.state is State.CLOSED
            for conn in conns:
                assert await conn.wait_closed(BOUND)
    assert recorder.events == []
