"""The managed connection on asyncio, against real servers on loopback."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import weakref

import pytest

import connman
from connman import State
from connman.testing import EchoServer
from tests.conftest import BOUND, FAST, MS, SLOW, Recorder


async def test_seed_readme_single_connection_example(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    # The seed README, translated: onConnect keeps the socket and uses it; onReset hands back
    # useSocket, a zero-argument function, to resume with instead of onConnect.
    used: list[str] = []
    received = bytearray()
    sock: dict[str, connman.Connection] = {}

    def use_socket() -> None:
        used.append("use")
        for _ in range(100):
            sock["conn"].write(b"ping\r\n")

    def on_data(buff: bytes) -> None:
        received.extend(buff)

    def on_connect(socket: connman.Connection) -> None:
        used.append("connect")
        sock["conn"] = socket
        use_socket()

    def on_reset() -> object:
        used.append("reset")
        return use_socket

    rec = Recorder()
    conn = cm.connect(
        server.port, "127.0.0.1", on_connect=on_connect, on_data=on_data, on_reset=on_reset, backoff=FAST
    )
    await rec.until(lambda: len(received) >= 600)
    assert received == b"ping\r\n" * 100
    await server.restart()
    await rec.until(lambda: len(received) >= 1200)
    assert used == ["connect", "use", "reset", "use"]
    assert conn.stats.connects == 2
    assert conn.stats.resets == 1


async def test_data_both_ways_and_stats(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks())
    assert await conn.wait_connected(BOUND)
    payload = bytes(range(256)) * 4096  # 1 MiB
    conn.write(payload)
    conn.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
    await recorder.wait_bytes(len(payload) + 3)
    assert bytes(recorder.data) == payload + b"abc"
    stats = conn.stats
    assert stats.bytes_out == stats.bytes_in == len(payload) + 3
    assert stats.state is State.CONNECTED
    assert stats.connects == 1 and stats.resets == 0 and stats.failed_attempts == 0
    assert stats.connected_since is not None and abs(stats.connected_since - time.time()) < 60


async def test_properties_expose_the_transport_and_socket(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    conn = cm.connect(server.port, "127.0.0.1")
    assert conn.endpoint == connman.Endpoint(server.port, "127.0.0.1")
    assert conn.transport is None and conn.socket is None and conn.peername is None
    assert await conn.wait_connected(BOUND)
    assert conn.is_connected
    assert conn.peername == ("127.0.0.1", server.port)
    assert conn.transport is not None
    sock = conn.socket
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert repr(conn) == f"<Connection 127.0.0.1:{server.port} connected>"


async def test_nodelay_false_turns_off_tcp_nodelay(server: EchoServer, cm: connman.ConnectionManager) -> None:
    conn = cm.connect(server.port, "127.0.0.1", nodelay=False)
    assert await conn.wait_connected(BOUND)
    assert conn.socket is not None
    assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_peer_close_fires_on_reset_then_on_connect(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder, reset: bool
) -> None:
    errors: list[BaseException | None] = []

    def on_reset() -> None:
        errors.append(conn.last_error)
        recorder.on_reset()

    conn = cm.connect(
        server.port, "127.0.0.1", on_connect=recorder.on_connect, on_reset=on_reset, backoff=FAST
    )
    await recorder.wait("connect")
    for round_ in range(1, 4):
        await recorder.until(lambda: server.clients == 1)
        assert server.drop_clients(reset=reset) == 1
        await recorder.wait("connect", round_ + 1)
    assert recorder.kinds() == ["connect", "reset"] * 3 + ["connect"]
    if reset:
        assert all(isinstance(error, ConnectionResetError) for error in errors)
    else:
        assert errors == [None, None, None]
    assert conn.stats.resets == 3


async def test_server_restarts_and_refusals_fire_on_reset_only_for_established_connections(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.wait("connect")
    await server.stop()
    await recorder.wait("reset")
    await recorder.until(lambda: conn.stats.failed_attempts >= 3)
    assert isinstance(conn.last_error, ConnectionRefusedError)
    assert conn.state in (State.WAITING, State.CONNECTING)
    await server.start()
    await recorder.wait("connect", 2)
    assert recorder.kinds() == ["connect", "reset", "connect"]


async def test_first_connect_to_a_refusing_port_retries_without_on_reset(
    cm: connman.ConnectionManager, recorder: Recorder, down_server: EchoServer
) -> None:
    late = down_server
    port = late.port
    conn = cm.connect(port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.until(lambda: conn.stats.failed_attempts >= 2)
    assert recorder.events == []
    await late.start()
    await recorder.wait("connect")
    assert recorder.kinds() == ["connect"]


async def test_closing_the_transport_directly_reconnects(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.wait("connect")
    assert conn.transport is not None
    conn.transport.close()
    await recorder.wait("connect", 2)
    assert recorder.kinds() == ["connect", "reset", "connect"]


async def test_reconnect_drops_and_connects_again_at_once(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=SLOW)
    await recorder.wait("connect")
    conn.reconnect()
    await recorder.wait("connect", 2)  # no 30 s wait
    assert recorder.kinds() == ["connect", "reset", "connect"]
    assert conn.stats.resets == 1


async def test_reconnect_skips_the_wait(
    cm: connman.ConnectionManager, recorder: Recorder, down_server: EchoServer
) -> None:
    server = down_server
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=SLOW)
    await recorder.until(lambda: conn.state is State.WAITING)
    await server.start()
    conn.reconnect()
    await recorder.wait("connect")


async def test_write_while_down_raises_not_connected(
    cm: connman.ConnectionManager, down_server: EchoServer
) -> None:
    closed = down_server
    conn = cm.connect(closed.port, "127.0.0.1", backoff=FAST)
    with pytest.raises(connman.NotConnected, match=r"is down \(it is connecting\)") as info:
        conn.write(b"x")
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(TypeError, match="data must be bytes-like, not str"):
        conn.write("text")  # type: ignore[arg-type]


async def test_queue_while_down_is_flushed_first_in_order(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    server = EchoServer(keep_data=True)
    await server.start()
    await server.stop()

    def on_connect(conn: connman.Connection) -> None:
        conn.write(b"hello from on_connect;")
        recorder.on_connect(conn)

    conn = cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=on_connect,
        on_data=recorder.on_data,
        backoff=FAST,
        queue_while_down=10,
    )
    conn.write(b"one;")
    conn.write(b"two;")
    with pytest.raises(connman.QueueFull, match="would exceed queue_while_down=10 \\(8 bytes queued"):
        conn.write(b"three;")
    assert conn.stats.queued == 8
    await server.start()
    try:
        await recorder.wait_bytes(len(b"one;two;hello from on_connect;"))
        assert bytes(recorder.data) == b"one;two;hello from on_connect;"
        assert conn.stats.queued == 0
    finally:
        await server.stop()


async def test_bad_data_types_are_refused_while_down(cm: connman.ConnectionManager) -> None:
    conn = cm.connect(9, "127.0.0.1", backoff=FAST, queue_while_down=100)
    with pytest.raises(TypeError, match="data must be bytes-like, not int"):
        conn.write(5)  # type: ignore[arg-type]


# ---- disconnect() in every state ------------------------------------------------------------------


async def test_disconnect_while_connecting_never_fires_on_connect(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks())
    assert conn.state is State.CONNECTING
    assert await conn.disconnect()
    assert conn.stats.state is State.CLOSED
    await asyncio.sleep(20 * MS)  # give a stray on_connect every chance to show up
    assert recorder.events == []
    assert server.clients == 0


async def test_disconnect_while_connected_closes_without_on_reset(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.wait("connect")
    conn.write(b"bye")
    await recorder.wait_bytes(3)
    accepts = server.accepts
    assert await conn.disconnect()
    await recorder.until(lambda: server.clients == 0)
    assert recorder.kinds() == ["connect", "data"]
    assert server.accepts == accepts
    with pytest.raises(connman.Disconnected, match="disconnected by the application"):
        conn.write(b"x")
    with pytest.raises(connman.Disconnected):
        conn.reconnect()
    assert not await conn.wait_connected(1)
    assert await conn.disconnect()  # idempotent


async def test_disconnect_while_waiting_cancels_the_retry_timer(
    cm: connman.ConnectionManager, recorder: Recorder, down_server: EchoServer
) -> None:
    server = down_server
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=SLOW)
    await recorder.until(lambda: conn.state is State.WAITING)
    started = time.monotonic()
    assert await conn.disconnect()
    assert time.monotonic() - started < 1
    # The cm fixture asserts that no connman timer is left on the loop.


async def test_disconnect_after_giving_up(cm: connman.ConnectionManager) -> None:
    gave_up: list[BaseException] = []
    conn = cm.connect(9, "127.0.0.1", backoff=FAST, max_attempts=3, on_give_up=gave_up.append)
    async with asyncio.timeout(BOUND):
        while conn.state is not State.FAILED:
            await conn.wait_changed()
    assert len(gave_up) == 1 and isinstance(gave_up[0], ConnectionRefusedError)
    assert conn.stats.failed_attempts == 3
    with pytest.raises(connman.GaveUp, match="gave up after 3 failed attempts"):
        conn.write(b"x")
    assert not await conn.wait_connected(1)
    assert await conn.disconnect()
    assert conn.stats.state is State.CLOSED


async def test_giving_up_after_one_attempt_says_one_failed_attempt(
    cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="connman"):
        conn = cm.connect(9, "127.0.0.1", backoff=FAST, max_attempts=1)
        async with asyncio.timeout(BOUND):
            while conn.state is not State.FAILED:
                await conn.wait_changed()
    with pytest.raises(connman.GaveUp, match=r"gave up after 1 failed attempt \("):
        conn.write(b"x")
    assert any("(max_attempts) after 1 failed attempt:" in r.getMessage() for r in caplog.records)


async def test_reconnect_revives_a_failed_connection(
    cm: connman.ConnectionManager, recorder: Recorder, down_server: EchoServer
) -> None:
    server = down_server
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST, max_attempts=1)
    async with asyncio.timeout(BOUND):
        while conn.state is not State.FAILED:
            await conn.wait_changed()
    await server.start()
    conn.reconnect()
    assert await conn.wait_connected(BOUND)


# ---- races --------------------------------------------------------------------------------------


async def test_disconnect_from_inside_each_callback(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    seen: list[str] = []

    def on_connect(conn: connman.Connection) -> None:
        seen.append("connect")
        conn.disconnect()

    c1 = cm.connect(server.port, "127.0.0.1", on_connect=on_connect)
    assert await c1.wait_closed(BOUND)

    def on_data_disconnect(data: bytes) -> None:
        seen.append("data")
        c2.disconnect()

    c2 = cm.connect(
        server.port, "127.0.0.1", on_connect=lambda c: c.write(b"x" * 10), on_data=on_data_disconnect
    )
    assert await c2.wait_closed(BOUND)

    def on_reset() -> None:
        seen.append("reset")
        c3.disconnect()

    c3 = cm.connect(server.port, "127.0.0.1", on_reset=on_reset, backoff=FAST)
    assert await c3.wait_connected(BOUND)
    accepts = server.accepts
    server.drop_clients()
    assert await c3.wait_closed(BOUND)
    await asyncio.sleep(60 * MS)  # longer than FAST's delays: a stray retry would connect
    assert server.accepts == accepts
    assert seen == ["connect", "data", "reset"]


@pytest.mark.parametrize("delay_ms", [0, 1, 2, 5, 10])
async def test_disconnect_racing_the_retry_timer(
    cm: connman.ConnectionManager, delay_ms: int, down_server: EchoServer
) -> None:
    server = down_server
    rec = Recorder()
    conn = cm.connect(
        server.port,
        "127.0.0.1",
        **rec.callbacks(),
        backoff=connman.Backoff(initial=5 * MS, cap=5 * MS, jitter="none"),
    )
    await server.start()
    await asyncio.sleep(delay_ms * MS)
    assert await conn.disconnect()
    await asyncio.sleep(20 * MS)
    assert conn.state is State.CLOSED
    assert server.clients == 0
    assert rec.count("connect") <= 1 and rec.count("reset") == 0


async def test_disconnect_racing_a_reset(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
    await recorder.wait("connect")
    server.drop_clients(reset=True)
    assert await conn.disconnect()
    await asyncio.sleep(60 * MS)
    assert conn.state is State.CLOSED
    assert recorder.count("connect") == 1


# ---- callbacks ---------------------------------------------------------------------------------


async def test_callbacks_that_raise_are_logged_and_isolated(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[BaseException] = []
    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        rec.add("connect")
        conn.write(b"ping")
        raise RuntimeError("boom in on_connect")

    def on_data(data: bytes) -> None:
        rec.add("data", data)
        raise ValueError("boom in on_data")

    def on_reset() -> None:
        rec.add("reset")
        raise KeyError("boom in on_reset")

    with caplog.at_level(logging.ERROR, logger="connman"):
        conn = cm.connect(
            server.port,
            "127.0.0.1",
            on_connect=on_connect,
            on_data=on_data,
            on_reset=on_reset,
            on_error=errors.append,
            backoff=FAST,
        )
        await rec.wait("data")
        server.drop_clients()
        await rec.wait("data", 2)
    assert conn.is_connected
    assert rec.kinds()[:4] == ["connect", "data", "reset", "connect"]
    assert [type(error) for error in errors][:4] == [RuntimeError, ValueError, KeyError, RuntimeError]
    messages = [record.getMessage() for record in caplog.records]
    assert "on_connect callback failed" in messages
    assert "on_data callback failed" in messages
    assert "on_reset callback failed" in messages
    assert all(record.exc_info for record in caplog.records if "callback failed" in record.getMessage())


async def test_on_error_that_raises_is_logged_too(
    server: EchoServer, cm: connman.ConnectionManager, caplog: pytest.LogCaptureFixture
) -> None:
    def on_error(exc: BaseException) -> None:
        raise RuntimeError("on_error broke")

    rec = Recorder()

    def on_connect(conn: connman.Connection) -> None:
        rec.add("connect")
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="connman"):
        cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_error=on_error)
        await rec.wait("connect")
    assert [r.getMessage() for r in caplog.records] == [
        "on_connect callback failed",
        "on_error callback failed",
    ]


async def test_on_reset_returning_a_non_callable_is_reported(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    errors: list[BaseException] = []
    cm.connect(
        server.port,
        "127.0.0.1",
        on_connect=recorder.on_connect,
        on_reset=lambda: 42,
        on_error=errors.append,
        backoff=FAST,
    )
    await recorder.wait("connect")
    server.drop_clients()
    await recorder.wait("connect", 2)  # falls back to on_connect
    assert len(errors) == 1 and "on_reset must return a callable or None" in str(errors[0])


async def test_resume_with_the_connection_is_used_once(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    def resume(conn: connman.Connection) -> None:
        recorder.add("resume", conn)

    def on_reset() -> object:
        recorder.add("reset")
        return resume if recorder.count("reset") == 1 else None

    conn = cm.connect(
        server.port, "127.0.0.1", on_connect=recorder.on_connect, on_reset=on_reset, backoff=FAST
    )
    await recorder.wait("connect")
    server.drop_clients()
    await recorder.wait("resume")
    await recorder.until(lambda: server.clients == 1)
    server.drop_clients()
    await recorder.wait("connect", 2)
    assert recorder.kinds() == ["connect", "reset", "resume", "reset", "connect"]
    assert recorder.events[2][1] is conn


async def test_async_callbacks_run_in_order_with_reading_paused(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    order: list[str] = []
    running = 0
    most = 0
    received = bytearray()
    done = asyncio.Event()

    async def on_connect(conn: connman.Connection) -> None:
        order.append("connect-start")
        await asyncio.sleep(5 * MS)
        conn.write(b"x" * 300_000)
        order.append("connect-end")

    async def on_data(data: bytes) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        received.extend(data)
        running -= 1
        if len(received) >= 300_000:
            done.set()

    conn = cm.connect(server.port, "127.0.0.1", on_connect=on_connect, on_data=on_data)
    async with asyncio.timeout(BOUND):
        await done.wait()
    assert order == ["connect-start", "connect-end"]
    assert most == 1
    assert bytes(received) == b"x" * 300_000
    assert conn.stats.bytes_in == 300_000


async def test_on_reset_waits_for_the_async_on_data_still_running(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    order: list[str] = []
    inside = asyncio.Event()
    release = asyncio.Event()
    reset = asyncio.Event()

    async def on_data(data: bytes) -> None:
        order.append("data-start")
        inside.set()
        await release.wait()
        order.append("data-end")

    def on_reset() -> None:
        order.append("reset")
        reset.set()

    conn = cm.connect(server.port, "127.0.0.1", on_data=on_data, on_reset=on_reset, backoff=SLOW)
    assert await conn.wait_connected(BOUND)
    conn.write(b"x")
    async with asyncio.timeout(BOUND):
        await inside.wait()
    # Dropped while on_data is still awaiting. (Reading is paused meanwhile, so a FIN from the peer
    # would only be seen after on_data returns; the application's own reconnect() is seen at once.)
    conn.reconnect()
    assert not conn.is_connected
    await asyncio.sleep(0)
    assert order == ["data-start"]  # on_reset waits its turn
    release.set()
    async with asyncio.timeout(BOUND):
        await reset.wait()
    assert order == ["data-start", "data-end", "reset"]


async def test_handler_object(server: EchoServer, cm: connman.ConnectionManager) -> None:
    class Handler:
        def __init__(self) -> None:
            self.rec = Recorder()

        def on_connect(self, conn: connman.Connection) -> None:
            conn.write(b"hello")

        async def on_data(self, data: bytes) -> None:
            self.rec.on_data(data)

    handler = Handler()
    cm.connect(server.port, "127.0.0.1", handler=handler)
    await handler.rec.wait_bytes(5)
    assert bytes(handler.rec.data) == b"hello"


# ---- registry ----------------------------------------------------------------------------------


async def test_two_connections_to_one_endpoint_are_both_tracked(server: EchoServer) -> None:
    cm = connman.ConnectionManager()
    first = cm.connect(server.port, "127.0.0.1")
    second = cm.connect(server.port, "127.0.0.1")
    assert cm.connections == (first, second)
    assert cm.get_connection(server.port, "127.0.0.1") is first
    assert cm.get_connection(server.port, "127.0.0.2") is None
    assert await first.wait_connected(BOUND)
    assert await second.wait_connected(BOUND)
    assert await cm.disconnect_all()
    assert first.state is second.state is State.CLOSED
    assert len(cm) == 0


async def test_a_disconnected_connection_is_forgotten_and_collected(server: EchoServer) -> None:
    async with connman.ConnectionManager() as cm:
        conn = cm.connect(server.port, "127.0.0.1", on_data=lambda data: None)
        assert await conn.wait_connected(BOUND)
        assert await conn.disconnect()
        assert len(cm) == 0
        ref = weakref.ref(conn)
        del conn
        gc.collect()
        assert ref() is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0, "127.0.0.1"), {}, ValueError, "port must be in 1..65535"),
        ((-1, "127.0.0.1"), {}, ValueError, "port must be in 1..65535"),
        ((65536, "127.0.0.1"), {}, ValueError, "port must be in 1..65535"),
        (("80", "127.0.0.1"), {}, TypeError, "port must be an int"),
        ((80, None), {}, TypeError, "host must be a str"),
        ((80, "127.0.0.1"), {"on_data": "print"}, TypeError, "on_data must be callable"),
        ((80, "127.0.0.1"), {"on_connect": 1}, TypeError, "on_connect must be callable"),
        ((80, "127.0.0.1"), {"on_reset": []}, TypeError, "on_reset must be callable"),
        (
            (80, "127.0.0.1"),
            {"on_data": print, "handler": object()},
            TypeError,
            "either handler or callbacks",
        ),
        ((80, "127.0.0.1"), {"retries": 3}, TypeError, "unknown option 'retries'"),
        ((80, "127.0.0.1"), {"connect_timeout": -1}, ValueError, "connect_timeout must be"),
    ],
)
async def test_bad_input_is_refused_at_the_call(
    cm: connman.ConnectionManager,
    args: tuple[object, ...],
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        cm.connect(*args, **kwargs)  # type: ignore[arg-type]
    assert len(cm) == 0


async def test_module_level_functions_use_the_default_manager(server: EchoServer) -> None:
    conn = connman.connect(server.port, "127.0.0.1")
    try:
        assert connman.get_connection(server.port, "127.0.0.1") is conn
        assert conn in connman.default_manager().connections
        assert await conn.wait_connected(BOUND)
    finally:
        assert await connman.disconnect_all()
    assert connman.get_connection(server.port, "127.0.0.1") is None
