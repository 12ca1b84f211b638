"""connman.Stream: the bytes of a connection as an iterator; reading paused while the consumer lags;
one b"" per lost connection that delivered bytes; the end at disconnect()."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading

import pytest

import connman
from connman.testing import EchoServer, ServerThread
from tests.conftest import BOUND, FAST, Recorder


async def test_chunks_arrive_in_order_and_a_reset_is_one_empty_chunk_then_the_iteration_goes_on(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent") as server:
        stream = connman.Stream()
        conn = stream.connect(
            server.port, "127.0.0.1", manager=cm, backoff=FAST, on_connect=recorder.on_connect
        )
        await recorder.wait("connect")
        await recorder.until(lambda: server.clients == 1)
        server.broadcast(b"before")
        received = bytearray()
        async with asyncio.timeout(BOUND):
            async for chunk in stream:
                received += chunk
                if received == b"before":
                    break
            server.drop_clients()
            assert await anext(stream) == b""  # the marker: the connection was lost here
            await recorder.wait("connect", 2)
            await recorder.until(lambda: server.clients == 1)
            server.broadcast(b"after")
            received.clear()
            async for chunk in stream:
                assert chunk  # no second marker: one per lost connection
                received += chunk
                if received == b"after":
                    break
            await conn.disconnect()
            remaining = [chunk async for chunk in stream]  # the iteration ends at disconnect()
        assert remaining == []  # no marker at disconnect(): the end is the end


async def test_reading_is_paused_while_the_consumer_lags_and_resumes_when_it_catches_up(
    cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    async with EchoServer(mode="silent") as server:
        stream = connman.Stream(max_buffer=64 * 1024)
        conn = stream.connect(server.port, "127.0.0.1", manager=cm, on_connect=recorder.on_connect)
        await recorder.wait("connect")
        await recorder.until(lambda: server.clients == 1)
        total = 8 * 1024 * 1024
        server.broadcast(b"x" * total)
        # Nobody consumes: the stream holds a bounded amount, the rest waits in the kernel and the peer.
        await recorder.until(lambda: stream.buffered > 64 * 1024)
        transport = conn.transport
        assert transport is not None
        await recorder.until(lambda: not transport.is_reading())
        held = stream.buffered
        assert held <= 64 * 1024 + 256 * 1024  # one read past the limit at most
        received = 0
        async with asyncio.timeout(BOUND * 4):
            async for chunk in stream:
                received += len(chunk)
                if received >= total:
                    break
        assert received == total
        stream.close()


async def test_close_ends_the_iteration_after_what_was_received(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    stream = connman.Stream()
    conn = cm.connect(server.port, "127.0.0.1", on_data=stream, on_connect=recorder.on_connect)
    await recorder.wait("connect")
    conn.write(b"ping")
    await recorder.until(lambda: stream.buffered == 4)
    stream.close()
    assert [chunk async for chunk in stream] == [b"ping"]


def test_sync_code_iterates_with_a_plain_for() -> None:
    with ServerThread() as server:
        stream = connman.Stream()
        conn = stream.connect(server.port, "127.0.0.1")
        assert conn.wait_connected(BOUND)
        conn.write(b"hello")
        got = bytearray()
        for chunk in stream:
            got += chunk
            if got == b"hello":
                break
        done = threading.Event()

        def consume() -> None:
            for _ in stream:
                pass
            done.set()

        thread = threading.Thread(target=consume)
        thread.start()
        assert conn.disconnect(BOUND)
        assert done.wait(BOUND)  # the iteration ended at disconnect()
        thread.join(BOUND)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_buffer"):
        connman.Stream(max_buffer=0)
    with pytest.raises(TypeError, match="max_buffer"):
        connman.Stream(max_buffer="big")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_data"):
        connman.Stream().connect(1, "127.0.0.1", on_data=print)


def test_a_consumer_in_another_thread_never_stalls_a_paused_stream() -> None:
    # The producer (the loop thread) counted a chunk, woke the consumer and only then armed the
    # future that pauses reading: a consumer in another thread that emptied the buffer in between
    # saw nothing to resume, and both waited for each other forever. A tiny switch interval makes
    # the threads interleave at every bytecode; max_buffer=1 pauses at every chunk.
    total = 64 * 1024 * 1024
    listener = socket.create_server(("127.0.0.1", 0))

    def flood() -> None:
        peer, _ = listener.accept()
        with peer:
            block = b"x" * 4096
            try:
                for _ in range(total // len(block)):
                    peer.sendall(block)
                peer.recv(1)  # until the client goes
            except OSError:
                pass

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    stream = connman.Stream(max_buffer=1)
    conn = stream.connect(listener.getsockname()[1], "127.0.0.1")
    received = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal received
        for chunk in stream:
            received += len(chunk)
            if received >= total:
                break
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        finished = done.wait(60)
    finally:
        sys.setswitchinterval(interval)
        assert conn.disconnect(BOUND)  # ends a stalled iteration too
        consumer.join(BOUND)
        listener.close()
        flooder.join(BOUND)
    assert finished, f"stalled after {received} of {total} bytes, {stream.buffered} buffered"
    assert received == total


def test_a_stream_passed_as_on_data_ends_at_close_not_at_disconnect() -> None:
    # What docs/framing.md says of a Stream given to connect() as its on_data: it cannot tell the
    # disconnect from a loss (b""), and close() ends the iteration.
    with ServerThread() as server:
        stream = connman.Stream()
        conn = connman.connect(server.port, "127.0.0.1", on_data=stream)
        assert conn.wait_connected(BOUND)
        conn.write(b"hello")
        got = bytearray()
        for chunk in stream:
            got += chunk
            if got == b"hello":
                break
        assert conn.disconnect(BOUND)
        assert next(stream) == b""
        stream.close()
        assert list(stream) == []


async def test_connect_with_an_empty_manager_registers_with_that_manager(
    server: EchoServer, cm: connman.ConnectionManager, recorder: Recorder
) -> None:
    # An empty ConnectionManager is falsy (it has a length): `manager or default` picked the default.
    assert len(cm) == 0
    stream = connman.Stream()
    conn = stream.connect(server.port, "127.0.0.1", manager=cm, on_connect=recorder.on_connect)
    assert conn in cm.connections and conn not in connman.default_manager().connections
    await recorder.wait("connect")
    async with asyncio.timeout(BOUND):
        await cm.aclose()
    assert conn.state is connman.State.CLOSED
