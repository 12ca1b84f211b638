"""The adaptive receive path of asyncio's default loop: buffered for small reads, plain for bulk.

A read that fills the shared buffer switches the transport to a plain `Protocol` (no copy out of the
buffer); a short plain read switches it back. These tests drive both switches over real loopback
sockets and check that nothing is lost, reordered or misreported on either side of a switch. The
loop's shared buffer is replaced by a 4 KiB one, so that a full read is certain once 8 KiB wait
in the socket (`FIONREAD`), whatever the kernel's window.
"""

from __future__ import annotations

import asyncio
import fcntl
import mmap
import struct
import termios
from collections.abc import AsyncIterator, Callable

import pytest

import connman
from connman import _protocol
from tests.conftest import BOUND, FAST, Recorder

SMALL_BUFFER = 4096
PATTERN = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MiB, position-dependent


@pytest.fixture
async def small_buffer() -> memoryview:
    buffer = memoryview(mmap.mmap(-1, SMALL_BUFFER))
    _protocol._receive_buffers[asyncio.get_running_loop()] = buffer
    return buffer


def queued(conn: connman.Connection) -> int:
    """Bytes waiting in the connection's socket, not yet read (FIONREAD)."""
    sock = conn.socket
    assert sock is not None
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0])


def on_buffered_path(conn: connman.Connection) -> bool:
    transport = conn.transport
    assert transport is not None
    return isinstance(transport.get_protocol(), asyncio.BufferedProtocol)


class Bulk:
    """A server that sends `PATTERN` after the client's b"go", then b"tail" after its b"more"."""

    def __init__(self, then: str = "tail") -> None:
        self.then = then
        self.writers: list[asyncio.StreamWriter] = []
        self.saw_eof = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            assert await reader.readexactly(2) == b"go"
            writer.write(PATTERN)
            await writer.drain()
            if self.then == "reset":
                writer.transport.abort()
                return
            assert await reader.readexactly(4) == b"more"
            writer.write(b"tail")
            await reader.read()  # the client's FIN
            self.saw_eof.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def serve(self) -> AsyncIterator[int]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        async with server:
            yield server.sockets[0].getsockname()[1]


async def pause_until_queued(rec: Recorder, conn: connman.Connection, release: asyncio.Future[None]) -> None:
    # on_data returned `release`, so reading is paused: wait for two buffers' worth to queue up.
    await rec.until(lambda: queued(conn) >= 2 * SMALL_BUFFER)
    release.set_result(None)


def collector(
    received: bytearray, sizes: list[int], release: asyncio.Future[None]
) -> Callable[[bytes], object]:
    def on_data(data: bytes) -> object:
        first = not received
        received.extend(data)
        sizes.append(len(data))
        return release if first else None  # the first chunk pauses reading until released

    return on_data


async def test_bulk_reads_go_plain_and_small_reads_come_back(small_buffer: memoryview) -> None:
    bulk = Bulk()
    received, sizes = bytearray(), list[int]()
    release = asyncio.get_running_loop().create_future()
    rec = Recorder()
    async for port in bulk.serve():
        async with connman.ConnectionManager() as cm:
            conn = cm.connect(port, "127.0.0.1", on_data=collector(received, sizes, release))
            assert await conn.wait_connected(BOUND)
            assert on_buffered_path(conn)
            conn.write(b"go")
            await rec.until(lambda: len(received) > 0)
            await pause_until_queued(rec, conn, release)
            await rec.until(lambda: len(received) >= len(PATTERN))
            assert bytes(received) == PATTERN  # whole and in order across the switches
            assert SMALL_BUFFER in sizes  # a full buffered read happened: the switch to plain
            assert max(sizes) > SMALL_BUFFER  # and plain reads, larger than the buffer, followed
            conn.write(b"more")
            await rec.until(lambda: len(received) >= len(PATTERN) + 4)
            assert bytes(received[len(PATTERN) :]) == b"tail"
            assert on_buffered_path(conn)  # a short plain read switched back
            assert conn.stats.bytes_in == len(PATTERN) + 4
            assert await conn.disconnect(BOUND)
        async with asyncio.timeout(BOUND):
            await bulk.saw_eof.wait()  # the close went through the plain path's forwarding too


async def test_a_reset_on_the_plain_path_is_a_reset(small_buffer: memoryview) -> None:
    bulk = Bulk(then="reset")
    received, sizes = bytearray(), list[int]()
    release = asyncio.get_running_loop().create_future()
    rec = Recorder()
    resets: list[None] = []
    async for port in bulk.serve():
        async with connman.ConnectionManager() as cm:
            conn = cm.connect(
                port,
                "127.0.0.1",
                on_data=collector(received, sizes, release),
                on_reset=lambda: resets.append(None),
                backoff=FAST,
            )
            assert await conn.wait_connected(BOUND)
            conn.write(b"go")
            await rec.until(lambda: len(received) > 0)
            await pause_until_queued(rec, conn, release)
            await rec.until(lambda: bool(resets))
            assert SMALL_BUFFER in sizes and max(sizes) > SMALL_BUFFER  # the reset came on the plain path
            assert bytes(received) == PATTERN[: len(received)]
            assert conn.stats.resets == 1
            assert await conn.wait_connected(BOUND)  # and it came back
            assert on_buffered_path(conn)  # a new attempt starts on the buffered path
            assert await conn.disconnect(BOUND)


async def test_a_disconnect_on_the_plain_path_closes_gracefully(small_buffer: memoryview) -> None:
    bulk = Bulk()
    received, sizes = bytearray(), list[int]()
    release = asyncio.get_running_loop().create_future()
    rec = Recorder()
    seen: dict[str, object] = {}
    collect = collector(received, sizes, release)

    def on_data(data: bytes) -> object:
        if len(data) > SMALL_BUFFER and "plain" not in seen:  # a plain read: disconnect from inside it
            seen["plain"] = not on_buffered_path(conn)
            seen["closed"] = conn.disconnect(BOUND)
        return collect(data)

    async for port in bulk.serve():
        async with connman.ConnectionManager() as cm:
            conn = cm.connect(port, "127.0.0.1", on_data=on_data)
            assert await conn.wait_connected(BOUND)
            conn.write(b"go")
            await rec.until(lambda: len(received) > 0)
            await pause_until_queued(rec, conn, release)
            await rec.until(lambda: "closed" in seen)
            assert seen["plain"] is True
            assert await conn.wait_closed(BOUND)
            assert conn.state is connman.State.CLOSED
            assert bytes(received) == PATTERN[: len(received)]  # nothing after disconnect() reached on_data
            await rec.until(lambda: bulk.writers[0].transport.is_closing())  # the server saw our FIN
