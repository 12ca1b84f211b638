"""Edges of the data path that its C form (`connman._speedups`) once handled unlike the Python one.

`make test` runs this file under both forms (the second time with `CONNMAN_PURE_PYTHON=1`).
"""

from __future__ import annotations

import asyncio
import mmap
import pathlib
import ssl

import pytest
import trustme

import connman
from connman._callbacks import Dispatcher
from connman._protocol import BufferedManagedProtocol
from connman.testing import EchoServer
from tests.aio.test_promises import LOOPS, LoopFactory, run_on
from tests.conftest import BOUND, FAST, Recorder


async def test_write_takes_data_by_keyword_too(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", on_data=recorder.on_data)
    await conn.wait_connected(BOUND)
    assert conn.write(data=b"ping") is True
    await recorder.wait_bytes(4)
    assert bytes(recorder.data) == b"ping"
    assert conn.stats.bytes_out == 4
    with pytest.raises(TypeError):
        conn.write()  # type: ignore[call-arg]


async def test_a_max_write_buffer_beyond_what_c_holds_is_no_limit(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    conn = cm.connect(server.port, "127.0.0.1", on_data=recorder.on_data, max_write_buffer=10**30)
    await conn.wait_connected(BOUND)
    assert conn.write(b"x" * 1000) is True
    await recorder.wait_bytes(1000)
    assert conn.stats.bytes_out == 1000


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_the_fast_path_writes_to_each_new_transport(loop_factory: LoopFactory) -> None:
    # On uvloop the C form calls the functions behind the transport's write() and is_closing(),
    # found once per transport: each reconnect must bring the new transport's.
    async def body(cm: connman.ConnectionManager) -> None:
        recorder = Recorder()
        async with EchoServer() as server:
            conn = cm.connect(server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST)
            for round_ in range(1, 4):
                await recorder.wait("connect", round_)
                transport = conn.transport
                assert conn.write(b"%d" % round_) is True
                await recorder.wait_bytes(round_)
                assert server.drop_clients() == 1
                await recorder.wait("connect", round_ + 1)
                assert conn.transport is not transport
            assert conn.write(b"4") is True
            await recorder.wait_bytes(4)
            assert bytes(recorder.data) == b"1234"
            assert conn.stats.bytes_out == 4

    run_on(loop_factory, body)


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_a_write_to_a_transport_closed_underneath_is_not_lost(loop_factory: LoopFactory) -> None:
    # The application closes the transport itself. The transport would drop what is written to it
    # now, so the fast path asks is_closing() on every write: the write raises, or, with
    # queue_while_down, is queued for the next connection.
    async def body(cm: connman.ConnectionManager) -> None:
        recorder = Recorder()
        async with EchoServer() as server:
            plain = cm.connect(server.port, "127.0.0.1", backoff=FAST)
            queueing = cm.connect(
                server.port, "127.0.0.1", **recorder.callbacks(), backoff=FAST, queue_while_down=10
            )
            await plain.wait_connected(BOUND)
            await recorder.wait("connect")
            for conn in (plain, queueing):
                assert conn.write(b"") is True  # the transport's methods are found on a first write
                assert conn.transport is not None
                conn.transport.close()
            with pytest.raises(connman.NotConnected, match="closing"):
                plain.write(b"lost?")
            assert queueing.write(b"kept") is True
            await recorder.wait("connect", 2)
            await recorder.wait_bytes(4)
            assert bytes(recorder.data) == b"kept"
            assert plain.stats.bytes_out == 0

    run_on(loop_factory, body)


async def test_buffer_updated_takes_only_what_the_buffer_holds() -> None:
    # The C form copies out of the buffer's memory: an nbytes beyond it must not read past its end.
    received: list[bytes] = []
    dispatcher = Dispatcher(asyncio.get_running_loop(), None, None, slow=0.0)  # type: ignore[arg-type]
    buffer = memoryview(bytearray(b"abcdefgh"))
    protocol = BufferedManagedProtocol(None, dispatcher, received.append, buffer)  # type: ignore[arg-type]
    protocol.buffer_updated(3)
    assert received == [b"abc"] and protocol.received == 3
    for wrong in (-1, 9, 2**64):
        with pytest.raises(ValueError, match="nbytes must be 0 to 8"):
            protocol.buffer_updated(wrong)
    assert received == [b"abc"] and protocol.received == 3
    # A released buffer: its memory may be gone (an mmap unmapped), so nothing is read from it.
    released = memoryview(mmap.mmap(-1, 4096))
    protocol.buffer = released
    released.release()
    with pytest.raises(ValueError, match="released"):
        protocol.buffer_updated(10)
    assert received == [b"abc"] and protocol.received == 3


async def test_the_fast_path_calls_what_the_transport_has_now(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # asyncio's transports are Python objects: an application may wrap a transport's write() after
    # connman wrote to it, and the C form, which skips the lookup only where nothing can change
    # (uvloop's transports), must call the wrapper like the Python form does.
    conn = cm.connect(server.port, "127.0.0.1", on_data=recorder.on_data)
    await conn.wait_connected(BOUND)
    assert conn.write(b"a") is True
    await recorder.wait_bytes(1)
    transport = conn.transport
    assert transport is not None
    seen: list[bytes] = []
    write = transport.write

    def traced(data: bytes | bytearray | memoryview) -> None:
        seen.append(bytes(data))
        write(data)

    transport.write = traced  # type: ignore[method-assign]
    assert conn.write(b"b") is True
    await recorder.wait_bytes(2)
    assert seen == [b"b"]
    assert bytes(recorder.data) == b"ab"


@pytest.mark.parametrize("loop_factory", LOOPS)
def test_writes_in_turn_to_transports_of_many_types_each_reach_their_own(
    loop_factory: LoopFactory, tmp_path: pathlib.Path
) -> None:
    # The C form keeps what it found for the last few transport types written to, not per
    # connection: TCP, Unix and TLS transports (on uvloop three types whose methods it calls
    # directly; on asyncio TCP and Unix share one), written to in turn, each write must go through
    # its own transport's methods.
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def body(cm: connman.ConnectionManager) -> None:
        sock_path = str(tmp_path / "echo.sock")
        tcp, tls = EchoServer(), EchoServer(ssl=server_context)
        async with tcp, EchoServer(path=sock_path), tls:
            recorders = [Recorder() for _ in range(4)]
            conns = [
                cm.connect(tcp.port, "127.0.0.1", on_data=recorders[0].on_data),
                cm.connect_unix(sock_path, on_data=recorders[1].on_data),
                cm.connect(
                    tls.port,
                    "127.0.0.1",
                    on_data=recorders[2].on_data,
                    ssl=client_context,
                    server_hostname="localhost",
                ),
                cm.connect(tcp.port, "127.0.0.1", on_data=recorders[3].on_data),
            ]
            for conn in conns:
                assert await conn.wait_connected(BOUND)
            kinds = {type(conn.transport) for conn in conns}
            same = type(conns[0].transport) is type(conns[1].transport)  # asyncio: TCP is Unix's
            assert len(kinds) == (2 if same else 3)
            for round_ in range(5):
                for index, conn in enumerate(conns):
                    assert conn.write(b"%d%d" % (index, round_)) is True
            for index, (conn, recorder) in enumerate(zip(conns, recorders, strict=True)):
                await recorder.wait_bytes(10)
                assert bytes(recorder.data) == b"".join(b"%d%d" % (index, round_) for round_ in range(5))
                assert conn.stats.bytes_out == 10

    run_on(loop_factory, body)
