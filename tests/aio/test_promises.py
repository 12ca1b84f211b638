"""Regression tests for promises the documentation makes and the code broke, against real loopback peers.

Each test states the promised behaviour: the write buffer bound, the idle deadline while connman itself
paused reading, the flap guard under a half-open detector, writes racing a closing transport, byte
counts, `GaveUp`'s message and fields, a blocking resolver, a TLS handshake cut short, pool member ids,
and uvloop's clock. Where a promise holds on both event loops, the test runs on each, in an
`asyncio.Runner` of its own.
"""

from __future__ import annotations

import array
import asyncio
import importlib.util
import itertools
import logging
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import trustme

import connman
from connman import Cause, State
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, MS, SLOW, Recorder, assert_nothing_pending
from tests.faults.conftest import start_echo_process

KiB = 1024
MiB = 1024 * KiB

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def new_uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


NO_UVLOOP = pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")

#: The two event loops connman supports: asyncio's default (selector) loop and uvloop.
LOOPS = [
    pytest.param(asyncio.new_event_loop, id="asyncio"),
    pytest.param(new_uvloop, id="uvloop", marks=NO_UVLOOP),
]


def run_on(
    loop_factory: LoopFactory, body: Callable[[connman.ConnectionManager], Coroutine[Any, Any, None]]
) -> None:
    """Run `body(cm)` on a fresh loop from `loop_factory`, with the `cm` fixture's checks at the end."""

    async def main() -> None:
        manager = connman.ConnectionManager()
        try:
            await body(manager)
        finally:
            async with asyncio.timeout(BOUND):
                await manager.aclose()
        assert len(manager) == 0
        assert_nothing_pending()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())


async def settle(predicate: Callable[[], bool], timeout: float = BOUND) -> None:
    """Wait until `predicate()` holds, for at most `timeout` seconds; the caller asserts what it needs."""
    try:
        await Recorder().until(predicate, timeout)
    except TimeoutError:
        pass


# ---- 1. max_write_buffer bounds every byte not yet handed to the kernel -----------------------


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_one_write_larger_than_max_write_buffer_raises_and_sends_nothing(loop_factory: LoopFactory) -> None:
    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer(mode="deaf") as deaf:
            small = cm.connect(deaf.port, "127.0.0.1", max_write_buffer=1 * MiB)
            default = cm.connect(deaf.port, "127.0.0.1")
            assert await small.wait_connected(BOUND)
            assert await default.wait_connected(BOUND)
            with pytest.raises(connman.BufferFull):
                small.write(bytes(64 * MiB))
            assert small.stats.bytes_out == 0
            assert small.transport is not None and small.transport.get_write_buffer_size() == 0
            with pytest.raises(connman.BufferFull):
                default.write(bytes(100 * MiB))  # the default bound is 32 MiB
            assert default.stats.bytes_out == 0
            assert small.is_connected and default.is_connected

    run_on(loop_factory, body)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_writes_from_another_thread_count_against_max_write_buffer(loop_factory: LoopFactory) -> None:
    limit = 8 * MiB
    kernel = 8 * MiB  # a generous allowance for what the kernel's socket buffers took meanwhile
    chunk = bytes(1 * MiB)
    returned: list[bool] = []
    refused: list[connman.BufferFull] = []

    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer(mode="deaf") as deaf:
            conn = cm.connect(deaf.port, "127.0.0.1", max_write_buffer=limit)
            assert await conn.wait_connected(BOUND)

            def writer() -> None:  # back to back, as fast as a thread can call
                for _ in range(200):
                    try:
                        returned.append(conn.write(chunk))
                    except connman.BufferFull as exc:
                        refused.append(exc)
                        return

            async with asyncio.timeout(BOUND):
                await asyncio.to_thread(writer)
            accepted = len(returned) * len(chunk)
            assert refused, f"all {len(returned)} writes of 1 MiB were accepted with max_write_buffer=8 MiB"
            assert accepted <= limit + kernel, accepted
            assert False in returned  # write() said "stop" before it had to refuse
            assert conn.is_connected

    run_on(loop_factory, body)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_max_write_buffer_below_the_high_water_mark_is_enforced(loop_factory: LoopFactory) -> None:
    # asyncio's high-water mark is 64 KiB; a bound of 1000 bytes must hold all the same. A small
    # SO_SNDBUF and a peer that never reads let the kernel fill up quickly, so that what follows
    # stays in the transport's buffer.
    limit = 1000
    chunk = bytes(600)
    buffered_after: list[int] = []

    def small_send_buffer(conn: connman.Connection) -> None:
        assert conn.socket is not None
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer(mode="deaf") as deaf:
            conn = cm.connect(deaf.port, "127.0.0.1", on_connect=small_send_buffer, max_write_buffer=limit)
            assert await conn.wait_connected(BOUND)
            transport = conn.transport
            assert transport is not None
            refused = False
            for _ in range(20_000):  # 12 MB at most: far more than the kernel takes
                before = transport.get_write_buffer_size()
                try:
                    conn.write(chunk)
                except connman.BufferFull:
                    refused = True
                    assert transport.get_write_buffer_size() == before  # nothing of it was taken
                    break
                buffered_after.append(transport.get_write_buffer_size())
            assert refused
            assert max(buffered_after) <= limit, max(buffered_after)

    run_on(loop_factory, body)


# ---- 2. idle_timeout does not count the time connman itself paused reading ---------------------


async def test_a_slow_async_on_data_is_not_mistaken_for_a_silent_peer(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()
    finished = 0

    async def on_data(data: bytes) -> None:
        nonlocal finished
        rec.data += data
        rec.add("data", data)
        await asyncio.sleep(800 * MS)  # reading stays paused meanwhile: backpressure
        finished += 1

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, idle_timeout=300 * MS, backoff=FAST)
    assert await conn.wait_connected(BOUND)
    conn.write(b"1")
    await rec.wait_bytes(1)
    conn.write(b"2")  # echoed while on_data sleeps: waits in the kernel until reading resumes
    conn.write(b"3")
    await settle(lambda: (len(rec.data) == 3 and finished == rec.count("data")) or conn.stats.resets > 0)
    assert conn.stats.resets == 0, conn.last_error
    assert bytes(rec.data) == b"123"
    assert conn.stats.bytes_in == 3
    assert conn.stats.connects == 1


async def test_a_slow_async_on_connect_is_not_mistaken_for_a_silent_peer(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    rec = Recorder()

    async def on_connect(conn: connman.Connection) -> None:
        rec.add("connect")
        await asyncio.sleep(1000 * MS)  # reading is paused until it returns
        rec.add("connected")

    conn = cm.connect(server.port, "127.0.0.1", on_connect=on_connect, idle_timeout=300 * MS, backoff=FAST)
    await settle(lambda: rec.count("connected") >= 1)
    assert conn.stats.connects == 1
    assert conn.stats.resets == 0, conn.last_error
    assert conn.is_connected
    assert rec.kinds() == ["connect", "connected"]


# ---- 3. the flap guard counts only the time a connection was alive ------------------------------


@pytest.fixture
def paused_process() -> Iterator[int]:
    """An echo server process, SIGSTOPped: its kernel accepts (backlog), it never answers. Its port."""
    process, port = start_echo_process("127.0.0.1")
    process.send_signal(signal.SIGSTOP)
    yield port
    process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait(5)
    assert process.stdout is not None
    process.stdout.close()


async def test_connections_ended_by_idle_timeout_without_a_byte_are_not_stable(
    paused_process: int, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # Each connection "stays up" exactly idle_timeout = min_uptime, but nothing ever came back: it was
    # never alive, so the backoff must keep growing (0.2, 0.4, 0.8 s ...) rather than restart at 0.2 s.
    second = 1000 * MS
    backoff = connman.Backoff(
        initial=0.2 * second, factor=2, cap=4 * second, jitter="none", min_uptime=second
    )
    loop = asyncio.get_running_loop()
    connects: list[float] = []

    def on_connect(conn: connman.Connection) -> None:
        connects.append(loop.time())
        recorder.on_connect(conn)

    conn = cm.connect(
        paused_process, "127.0.0.1", on_connect=on_connect, idle_timeout=second, backoff=backoff
    )
    await recorder.wait("connect", 4, timeout=15 * second)
    assert conn.last_cause is Cause.HALF_OPEN
    gaps = [later - earlier for earlier, later in itertools.pairwise(connects)]
    # Fixed: about 1.2, 1.4, 1.8 s (idle_timeout plus a doubling delay); broken: 1.2 s each time.
    assert all(later > earlier + 0.1 * second for earlier, later in itertools.pairwise(gaps)), gaps
    assert gaps[-1] - gaps[0] >= 0.4 * second, gaps


# ---- 4. a write racing a closing transport is a write while down --------------------------------


async def test_a_write_after_the_transport_started_closing_is_queued(
    cm: connman.ConnectionManager, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    async with EchoServer(mode="silent", keep_data=True) as server:
        conn = cm.connect(
            server.port, "127.0.0.1", **recorder.callbacks(), queue_while_down=1024, backoff=FAST
        )
        await recorder.wait("connect")
        transport = conn.transport
        assert transport is not None
        with caplog.at_level(logging.WARNING):
            transport.close()  # connman hears of it only at connection_lost, a loop step later
            for _ in range(6):  # asyncio warns from the 5th write to a lost transport on
                assert conn.write(b"x")
            await recorder.wait("connect", 2)
            await settle(lambda: server.received >= 6)
        assert bytes(server.data) == b"xxxxxx"
        assert conn.stats.queued == 0
        assert recorder.kinds() == ["connect", "reset", "connect"]
        assert not [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]


async def test_a_write_after_the_transport_started_closing_raises_not_connected(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.wait("connect")
    transport = conn.transport
    assert transport is not None
    transport.close()
    with pytest.raises(connman.NotConnected):
        conn.write(b"x")
    await recorder.wait("connect", 2)
    assert conn.stats.bytes_out == 0


# ---- 5. bytes_out counts bytes --------------------------------------------------------------------


async def test_bytes_out_counts_bytes_of_a_memoryview_with_wide_items(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks())
    assert await conn.wait_connected(BOUND)
    view = memoryview(array.array("i", range(1000)))
    assert view.nbytes == 4000 and len(view) == 1000
    conn.write(view)
    await recorder.wait_bytes(view.nbytes)
    assert bytes(recorder.data) == view.tobytes()
    assert conn.stats.bytes_out == 4000
    assert conn.stats.bytes_in == 4000


# ---- 6. GaveUp says why, truthfully, and carries the facts --------------------------------------


async def test_gave_up_after_give_up_after_says_so(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    give_up = 250 * MS
    conn = cm.connect(down_server.port, "127.0.0.1", backoff=FAST, give_up_after=give_up)
    assert not await conn.wait_connected(BOUND)
    assert conn.state is State.FAILED
    with pytest.raises(connman.GaveUp) as info:
        conn.write(b"x")
    message = str(info.value)
    assert "None attempts" not in message, message
    assert "give_up_after" in message, message
    assert str(give_up) in message or f"{give_up:g}" in message, message
    # Read through Any: the fields are what this test asks for (mypy checks the code that has them).
    error: Any = info.value
    assert error.reason == "give_up_after"
    assert isinstance(error.attempts, int)
    assert error.attempts == conn.stats.failed_attempts >= 1
    assert error.last_error is conn.last_error
    assert isinstance(error.last_error, ConnectionRefusedError)


async def test_gave_up_after_max_attempts_says_so(
    down_server: EchoServer, cm: connman.ConnectionManager
) -> None:
    conn = cm.connect(down_server.port, "127.0.0.1", backoff=FAST, max_attempts=3)
    assert not await conn.wait_connected(BOUND)
    assert conn.state is State.FAILED
    with pytest.raises(connman.GaveUp) as info:
        conn.write(b"x")
    message = str(info.value)
    assert "3 failed attempts" in message, message
    error: Any = info.value
    assert error.reason == "max_attempts"
    assert error.attempts == 3 == conn.stats.failed_attempts
    assert error.last_error is conn.last_error
    assert isinstance(error.last_error, ConnectionRefusedError)


# ---- 7. a blocking resolver neither stalls the loop nor outlives connect_timeout ---------------


async def test_a_blocking_sync_resolver_does_not_stall_the_loop(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    block = 1500 * MS
    timeout = 300 * MS

    def slow_resolver(host: str, port: int) -> str:
        time.sleep(block)  # a blocking getaddrinfo() on a bad day
        return host

    busy = cm.connect(server.port, "127.0.0.1", **recorder.callbacks())
    assert await busy.wait_connected(BOUND)
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    stop = asyncio.Event()

    async def round_trips() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            expected = len(recorder.data) + 1
            busy.write(b".")
            await recorder.wait_bytes(expected)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            await asyncio.sleep(10 * MS)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(round_trips())
        await recorder.until(lambda: len(gaps) >= 3)
        started = loop.time()
        stalled = cm.connect(
            server.port, "127.0.0.1", resolver=slow_resolver, connect_timeout=timeout, backoff=SLOW
        )
        await recorder.until(lambda: stalled.stats.failed_attempts >= 1)
        failed_after = loop.time() - started
        # This test is about elapsed time: the other connection is served until the resolver returns.
        await asyncio.sleep(max(0.0, started + block + 100 * MS - loop.time()))
        stop.set()
    assert max(gaps) < timeout, max(gaps)
    assert isinstance(stalled.last_error, connman.ConnectTimeout), repr(stalled.last_error)
    assert stalled.state is State.WAITING
    assert 0.9 * timeout <= failed_after < timeout + 400 * MS, failed_after


# ---- 8. a TLS handshake cut short by the peer is a reset -----------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_peer_closing_during_the_tls_handshake_is_a_reset(
    ca: trustme.CA, loop_factory: LoopFactory
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)

    async def body(cm: connman.ConnectionManager) -> None:
        rec = Recorder()
        async with EchoServer(mode="silent") as server:  # a plain TCP server, reading and never answering
            conn = cm.connect(
                server.port,
                "127.0.0.1",
                **rec.callbacks(),
                ssl=context,
                server_hostname="localhost",
                backoff=SLOW,
            )
            await rec.until(lambda: server.received > 0)  # the ClientHello arrived, and was read
            assert server.drop_clients() == 1  # a FIN, mid-handshake (nothing unread, so no RST)
            await rec.until(lambda: conn.stats.failed_attempts >= 1)
            assert conn.state is State.WAITING
            assert conn.last_cause is Cause.RESET, repr(conn.last_error)
            assert rec.events == []

    run_on(loop_factory, body)


# ---- 9. pool members to one endpoint keep distinct ids ------------------------------------------


async def test_a_member_added_after_a_disconnect_gets_its_share_of_keys(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    pool = cm.create_pool("same-endpoint")
    first = [pool.add_connection(server.port, "127.0.0.1") for _ in range(3)]
    for conn in first:
        assert await conn.wait_connected(BOUND)
    keys = range(3000)
    assert {pool.pick(key) for key in keys} == set(first)

    assert await first[1].disconnect()
    assert len(pool) == 2
    newcomer = pool.add_connection(server.port, "127.0.0.1")
    assert await newcomer.wait_connected(BOUND)
    owners = [pool.pick(key) for key in keys]
    share = owners.count(newcomer)
    assert 700 <= share <= 1300, f"the new member owns {share} of {len(keys)} keys"
    assert set(owners) == {first[0], first[2], newcomer}


# ---- 10. uvloop's durations are not rounded to the millisecond --------------------------------


def fine_grained(seconds: float | None) -> bool:
    """Positive and not a whole number of milliseconds (libuv's clock ticks in milliseconds)."""
    if seconds is None or seconds <= 0:
        return False
    millis = seconds * 1000
    return abs(millis - round(millis)) > 1e-6


@NO_UVLOOP
def test_durations_under_uvloop_are_finer_than_a_millisecond() -> None:
    latencies: list[float | None] = []
    in_state: list[float] = []

    async def body(cm: connman.ConnectionManager) -> None:
        async with EchoServer() as server:
            for _ in range(5):
                conn = cm.connect(server.port, "127.0.0.1")
                assert await conn.wait_connected(BOUND)
                stats = conn.stats
                latencies.append(stats.connect_latency)
                in_state.append(stats.in_state_for)
                assert await conn.disconnect()

    run_on(new_uvloop, body)
    assert sum(map(fine_grained, latencies)) >= 4, latencies
    assert sum(map(fine_grained, in_state)) >= 4, in_state


async def test_a_reconnect_leaves_no_linger_timer_once_the_old_transport_closed(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # The old transport closes within its linger; its abort timer must go with it, not wait out
    # CLOSE_LINGER holding the connection (the timer's repr names connman only in debug mode).
    asyncio.get_running_loop().set_debug(True)
    conn = cm.connect(server.port, "127.0.0.1", on_connect=recorder.on_connect, backoff=FAST)
    await recorder.wait("connect")
    conn.reconnect()
    await recorder.until(lambda: recorder.count("connect") == 2)
    await recorder.until(lambda: conn.stats.state is connman.State.CONNECTED and server.clients == 1)
    async with asyncio.timeout(BOUND):
        await cm.aclose()
    assert_nothing_pending()
